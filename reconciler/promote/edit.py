"""The comment-preserving edit of a target state file (promote).

ruamel.yaml (round trip) locates each entry and renders the new one in the target's
indentation; the new text is spliced in place of exactly the lines of the old entry, so every
other line of the target - comments, key order, quoting, blank lines - stays byte for byte.
The result is re-parsed and compared with what was intended; when the line-exact edit cannot
be made (flow style, odd layouts) a whole-file ruamel round trip is used, with a warning.
"""

from __future__ import annotations

import io
import json

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from reconciler.core.errors import PausectlError


# ---- ruamel helpers ----------------------------------------------------------------------

def ruamel_yaml():
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def plain(node):
    """A ruamel/pyyaml node as plain Python data (for comparisons)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if hasattr(node, "isoformat"):
        return node.isoformat()
    if isinstance(node, str):
        return str(node)
    return node


def norm(entry) -> dict | None:
    """An entry for comparing source and target: plain, without `promote`."""
    if entry is None:
        return None
    d = plain(entry)
    if isinstance(d, dict):
        d.pop("promote", None)
    return d


def load_plain(text: str | None):
    if text is None:
        return None
    try:
        return pyyaml.safe_load(text)
    except pyyaml.YAMLError:
        return None


def entry_of(data, kind: str, name: str):
    """The dag entry / group named `name` in a loaded state file (plain or ruamel)."""
    if not isinstance(data, dict):
        return None
    if kind == "dag":
        dags = data.get("dags")
        return dags.get(name) if isinstance(dags, dict) else None
    for g in data.get("groups") or []:
        if isinstance(g, dict) and g.get("name") == name:
            return g
    return None


# ---- the splice --------------------------------------------------------------------------

def _is_filler(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


def _section_end(doc, lines: list[str], key: str) -> int:
    """Index of the first line after the top-level section `key`."""
    keys = list(doc.keys())
    i = keys.index(key)
    end = len(lines)
    if i + 1 < len(keys):
        end = doc.lc.key(keys[i + 1])[0]
    return end


def _content_end(lines: list[str], start: int, end: int) -> int:
    """Drop trailing blank and comment-only lines of lines[start:end] (they belong to what
    follows, e.g. a comment heading the next entry)."""
    while end > start + 1 and _is_filler(lines[end - 1]):
        end -= 1
    return end


def _inner_indent(sec, default: int = 2) -> int:
    """How far the target indents an entry's keys under the entry's own key."""
    for k in sec:
        v = sec[k]
        if hasattr(v, "lc") and getattr(v, "fa", None) is not None and not v.fa.flow_style() \
                and len(v):
            first = next(iter(v))
            step = v.lc.key(first)[1] - sec.lc.key(k)[1]
            if 1 <= step <= 8:
                return step
    return default


def _render(kind: str, name: str, entry, col: int, inner: int = 2) -> list[str]:
    y = ruamel_yaml()
    buf = io.StringIO()
    if kind == "dag":
        y.indent(mapping=inner, sequence=inner + 2, offset=inner)
        y.dump({name: entry}, buf)
    else:
        y.indent(mapping=2, sequence=2, offset=0)
        y.dump([entry], buf)
    out = buf.getvalue().splitlines(keepends=True)
    while out and _is_filler(out[-1]):      # a trailing comment belongs to the next entry
        out.pop()
    pad = " " * col
    return [(pad + ln if ln.strip() else ln) for ln in out]


class Spliced(Exception):
    """The target cannot be edited line-exactly (e.g. a flow-style section)."""


def splice(text: str, kind: str, updates: list[tuple[str, object]]) -> str:
    """Replace or append entries (kind dag|group) in a state file's text, changing no other line."""
    y = ruamel_yaml()
    for name, entry in updates:
        doc = y.load(text)
        if doc is None:
            doc = {}
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        section = "dags" if kind == "dag" else "groups"
        sec = doc.get(section) if hasattr(doc, "get") else None
        if sec is not None and getattr(sec, "fa", None) is not None and sec.fa.flow_style():
            raise Spliced(f"'{section}' is written in flow style")
        if not sec:
            # no section (or an empty one): append a block section at the end of the file
            if section in doc:
                ln = doc.lc.key(section)[0]
                if lines[ln].split(":", 1)[1].split("#", 1)[0].strip() not in ("", "{}", "[]", "null", "~"):
                    raise Spliced(f"cannot append to '{section}'")
                lines[ln] = f"{section}:\n"
                insert_at = ln + 1
            else:
                lines.append(f"{section}:\n")
                insert_at = len(lines)
            new = _render(kind, name, entry, 2)
            lines[insert_at:insert_at] = new
            text = "".join(lines)
            continue
        end_sec = _section_end(doc, lines, section)
        if kind == "dag":
            keys = list(sec.keys())
            cols = {sec.lc.key(k)[1] for k in keys}
            col = min(cols) if cols else 2
            inner = _inner_indent(sec)
            if name in sec:
                i = keys.index(name)
                start = sec.lc.key(name)[0]
                nxt = sec.lc.key(keys[i + 1])[0] if i + 1 < len(keys) else end_sec
                stop = _content_end(lines, start, nxt)
                lines[start:stop] = _render(kind, name, entry, col, inner)
            else:
                last = sec.lc.key(keys[-1])[0]
                stop = _content_end(lines, last, end_sec)
                lines[stop:stop] = _render(kind, name, entry, col, inner)
        else:
            idx = next((i for i, g in enumerate(sec) if isinstance(g, dict)
                        and g.get("name") == name), None)
            starts = [sec.lc.item(i)[0] for i in range(len(sec))]
            col = sec.lc.item(0)[1] - 2
            if col < 0 or lines[starts[0]][col:col + 1] != "-":
                raise Spliced("groups items are not written as '- key: value'")
            if idx is not None:
                start = starts[idx]
                nxt = starts[idx + 1] if idx + 1 < len(sec) else end_sec
                stop = _content_end(lines, start, nxt)
                lines[start:stop] = _render(kind, name, entry, col)
            else:
                stop = _content_end(lines, starts[-1], end_sec)
                lines[stop:stop] = _render(kind, name, entry, col)
        text = "".join(lines)
    return text


def apply_updates(text: str, updates: list[tuple[str, str, object]]) -> tuple[str, list[str]]:
    """(new text, warnings). updates: (kind, name, ruamel entry). Line-exact where possible,
    else a whole-file ruamel round trip (comments kept, layout may move: said in a warning)."""
    warnings = []
    new = text
    try:
        for kind in ("dag", "group"):
            items = [(n, e) for k, n, e in updates if k == kind]
            if items:
                new = splice(new, kind, items)
    except Spliced as e:
        warnings.append(f"{e}: rewrote the target with a ruamel round trip; layout outside "
                        "the promoted entries may have moved")
        new = _roundtrip(text, updates)
    # check: the result says exactly what was intended
    want = load_plain(text) or {}
    for kind, name, entry in updates:
        _set_plain(want, kind, name, plain(entry))
    got = load_plain(new)
    if plain(got) != plain(want):
        new = _roundtrip(text, updates)
        if plain(load_plain(new)) != plain(want):
            raise PausectlError("internal error: the promoted target file does not read back "
                                "as intended; nothing was written")
        warnings.append("line-exact edit did not read back as intended: used a ruamel round trip")
    return new, warnings


def _set_plain(data: dict, kind: str, name: str, entry) -> None:
    if kind == "dag":
        if not isinstance(data.get("dags"), dict):
            data["dags"] = {}
        data["dags"][name] = entry
        return
    groups = data.get("groups")
    if not isinstance(groups, list):
        groups = data["groups"] = []
    for i, g in enumerate(groups):
        if isinstance(g, dict) and g.get("name") == name:
            groups[i] = entry
            return
    groups.append(entry)


def _roundtrip(text: str, updates) -> str:
    y = ruamel_yaml()
    doc = y.load(text) or CommentedMap()
    for kind, name, entry in updates:
        if kind == "dag":
            if not isinstance(doc.get("dags"), dict):
                doc["dags"] = CommentedMap()
            doc["dags"][name] = entry
        else:
            if not isinstance(doc.get("groups"), list):
                doc["groups"] = CommentedSeq()
            for i, g in enumerate(doc["groups"]):
                if g.get("name") == name:
                    doc["groups"][i] = entry
                    break
            else:
                doc["groups"].append(entry)
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def flow_json(entry) -> str:
    """An entry on one line, for messages."""
    if entry is None:
        return "no entry"
    return json.dumps(entry, default=str, sort_keys=True)
