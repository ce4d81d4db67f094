"""`pausectl promote --from dev --to prod`: carry promotable rules into the next environment.

What is promoted: rules marked `promote: true` in the source environment's own files (its state
file, and includes the target does not share), dag entries by dag_id and groups by name. Each
replaces the target's entry of the same name, or is appended. `promote: true` itself is kept
only when the target promotes further (`promote_to`).

How the target file is written: ruamel.yaml (round trip) locates each entry and renders the new
one in the target's indentation; the new text is spliced in place of exactly the lines of the
old entry, so every other line of the target - comments, key order, quoting, blank lines -
stays byte for byte. The result is re-parsed and compared with what was intended.

Gates (all must pass, or nothing is written):
- conflicts: a target entry changed since the last promotion from->to (a commit with the
  `Pausectl-Promotion: from -> to` trailer), or else since `--since REF`'s merge-base, or else
  since the source entry's last change, and it differs from what would be promoted: both sides
  are shown, with the commits that changed the target;
- soak: every DAG the rule decides in the source environment is live in the desired state,
  has been for `promotion.soak_hours`, and had at most `promotion.max_failed_runs` failed runs
  since (read from the source backend: audit log and DAG runs);
- target plan: the target validates with the new file, and its plan against live Airflow
  passes the safety guards (`safety.max_changes`, no conflicts, no protected DAG changed).

The result is one commit on a new branch (plumbing: the working tree and index are untouched;
`--checkout` switches to it), with a message listing every promoted rule.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml as pyyaml

from reconciler.core.errors import PausectlError
from reconciler.state.gitref import (check_branch, check_ref, commit_info, file_text, git, resolve_commit,
                       state_location)
from reconciler.state.loader import Config, EnvState, Rule, load_config, load_env
from reconciler.core.timeutil import iso, utcnow

TRAILER = "Pausectl-Promotion"


# ---- ruamel helpers ----------------------------------------------------------------------

def _ruamel():
    from ruamel.yaml import YAML
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _plain(node):
    """A ruamel/pyyaml node as plain Python data (for comparisons)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if hasattr(node, "isoformat"):
        return node.isoformat()
    if isinstance(node, str):
        return str(node)
    return node


def _norm(entry) -> dict | None:
    """An entry for comparing source and target: plain, without `promote`."""
    if entry is None:
        return None
    d = _plain(entry)
    if isinstance(d, dict):
        d.pop("promote", None)
    return d


def _load_plain(text: str | None):
    if text is None:
        return None
    try:
        return pyyaml.safe_load(text)
    except pyyaml.YAMLError:
        return None


def _entry(data, kind: str, name: str):
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
    y = _ruamel()
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
    y = _ruamel()
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
                insert_at = len(lines)
                if lines and lines[-1].strip():
                    pass
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
    want = _load_plain(text) or {}
    for kind, name, entry in updates:
        _set_plain(want, kind, name, _plain(entry))
    got = _load_plain(new)
    if _plain(got) != _plain(want):
        new = _roundtrip(text, updates)
        if _plain(_load_plain(new)) != _plain(want):
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
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    y = _ruamel()
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


# ---- candidates --------------------------------------------------------------------------

@dataclass
class Candidate:
    kind: str                       # dag | group
    name: str
    rule: Rule                      # the source rule
    entry: object                   # ruamel entry to write
    status: str = "new"             # new | update | same | conflict
    target_where: str | None = None
    target_entry: dict | None = None
    conflict: dict | None = None
    source_commit: str | None = None
    gate: dict | None = None

    @property
    def label(self) -> str:
        return f"{'dag entry' if self.kind == 'dag' else 'group'} {self.name}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "status": self.status,
                "source": self.rule.where, "paused": self.rule.paused,
                "reason": self.rule.reason, "owner": self.rule.owner, "ticket": self.rule.ticket,
                "target": self.target_where, "target_entry": self.target_entry,
                "entry": _plain(self.entry), "source_commit": self.source_commit,
                "conflict": self.conflict, "gate": self.gate}


@dataclass
class Promotion:
    source: str
    target: str
    target_file: str
    candidates: list[Candidate] = field(default_factory=list)
    target_plan: dict | None = None
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    branch: str | None = None
    commit: str | None = None
    message: str | None = None
    dry_run: bool = False
    new_text: str | None = None

    @property
    def to_promote(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status in ("new", "update")]

    def to_json(self) -> dict:
        return {"from": self.source, "to": self.target, "target_file": self.target_file,
                "dry_run": self.dry_run, "ok": not self.failures,
                "candidates": [c.to_json() for c in self.candidates],
                "target_plan": self.target_plan, "warnings": self.warnings,
                "failures": self.failures, "branch": self.branch, "commit": self.commit,
                "message": self.message}


def _own_files(cfg: Config, src: EnvState, dst: EnvState) -> set[str]:
    return set(src.files) - set(dst.files)


def _file_of(where: str) -> str:
    return where.rpartition(":")[0]


def _source_entries(cfg: Config, src_state: EnvState, files: set[str]) -> dict[str, object]:
    """shown file -> ruamel document, for the source files holding promotable rules."""
    y = _ruamel()
    docs = {}
    for f in files:
        p = Path(f)
        docs[f] = y.load(p.read_text(encoding="utf-8")) if p.is_file() else None
    return docs


def find_candidates(cfg: Config, src: EnvState, dst: EnvState, only: list[str] | None,
                    keep_promote: bool) -> list[Candidate]:
    own = _own_files(cfg, src, dst)
    rules = [r for r in src.all_rules() if r.promote and _file_of(r.where) in own]
    if only:
        wanted = set(only)
        rules = [r for r in rules if r.name in wanted]
        unknown = wanted - {r.name for r in rules}
        if unknown:
            raise PausectlError(f"--dags: no promotable rule (promote: true) named "
                                f"{', '.join(sorted(unknown))} in {src.name}'s files")
    docs = _source_entries(cfg, src, {_file_of(r.where) for r in rules})
    out = []
    seen = set()
    for r in rules:
        kind = "dag" if r.layer == "dag" else "group"
        if (kind, r.name) in seen:
            raise PausectlError(f"{r.where}: {r.label()} is promotable in two of {src.name}'s "
                                "files; keep one")
        seen.add((kind, r.name))
        entry = copy.deepcopy(_entry(docs[_file_of(r.where)], kind, r.name))
        if entry is None:   # pragma: no cover (the loader found it)
            raise PausectlError(f"{r.where}: cannot read {r.label()}")
        if not keep_promote and "promote" in entry:
            del entry["promote"]
        out.append(Candidate(kind, r.name, r, entry))
    return out


# ---- git history of entries --------------------------------------------------------------

def _entry_at(commit, path: str, kind: str, name: str):
    if commit is None:
        return None
    return _norm(_entry(_load_plain(file_text(commit, path)), kind, name))


def _last_change(repo, head, path: str, kind: str, name: str, stop=None):
    """The newest commit (from head back, not past `stop`) that changed the entry."""
    for c in repo.iter_commits(head.hexsha, paths=[path], max_count=500):
        if stop is not None and c.hexsha == stop.hexsha:
            return None
        parent = c.parents[0] if c.parents else None
        if _entry_at(c, path, kind, name) != _entry_at(parent, path, kind, name):
            return c
    return None


def _changes_since(repo, head, base, path: str, kind: str, name: str) -> list:
    """Commits after `base` (exclusive) up to head that changed the entry, newest first."""
    out = []
    rev = f"{base.hexsha}..{head.hexsha}" if base is not None else head.hexsha
    for c in repo.iter_commits(rev, paths=[path], max_count=500):
        parent = c.parents[0] if c.parents else None
        if _entry_at(c, path, kind, name) != _entry_at(parent, path, kind, name):
            out.append(c)
    return out


def last_promotion(repo, head, source: str, target: str):
    needle = f"{TRAILER}: {source} -> {target}"
    for c in repo.iter_commits(head.hexsha, max_count=2000):
        msg = c.message if isinstance(c.message, str) else c.message.decode("utf-8", "replace")
        if needle in msg.splitlines():
            return c
    return None


# ---- gates -------------------------------------------------------------------------------

def soak_gate(cfg: Config, src: EnvState, cands: list[Candidate], at: datetime,
              commit_times: dict[str, datetime]) -> list[str]:
    """Check each candidate ran in the source environment long enough without failures.
    Sets cand.gate; returns failure messages."""
    from reconciler.engine import open_backend, read_emergency
    from reconciler.policy.resolve import resolve
    promo = cfg.promotion or {}
    soak = float(promo.get("soak_hours", 0) or 0)
    max_failed = int(promo.get("max_failed_runs", 0) or 0)
    failures = []
    backend = None
    try:
        backend = open_backend(cfg, src.name)
        live = backend.list_dags()
        res = resolve(cfg, src, live, at, read_emergency(backend, src.name))
    except (PausectlError, OSError) as e:
        for c in cands:
            c.gate = {"passed": False, "message": f"cannot read {src.name}: {e}"}
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
        return [f"soak gate: cannot read {src.name}'s Airflow: {e}"] if cands else []
    try:
        by_id = {d.dag_id: d for d in live}
        for c in cands:
            dags = sorted(d for d, dec in res.decisions.items() if dec.rule is c.rule)
            msg = []
            if not dags:
                msg.append(f"decides no DAG in {src.name}'s Airflow, so nothing ran")
            lagging = [d for d in dags if by_id[d].is_paused != c.rule.paused]
            if lagging:
                msg.append(f"not applied in {src.name} yet: {', '.join(lagging[:5])}"
                           + (" ..." if len(lagging) > 5 else "")
                           + f" still {'running' if c.rule.paused else 'paused'}")
            events = backend.audit_events(dags) if dags and not lagging else []
            newest: dict[str, datetime] = {}
            for e in events:
                if e.dag_id and e.dag_id not in newest:
                    newest[e.dag_id] = e.when
            fallback = commit_times.get(c.name)
            since_by_dag = {d: newest.get(d) or fallback for d in dags}
            unknown = [d for d, s in since_by_dag.items() if s is None]
            if unknown and not lagging:
                msg.append(f"cannot tell since when {', '.join(unknown[:5])} ran this way")
            failed = {}
            ran_for = None
            if dags and not lagging and not unknown:
                since = max(since_by_dag.values())
                ran_for = (at - since).total_seconds() / 3600
                if ran_for < soak:
                    msg.append(f"ran {ran_for:.2f}h in {src.name}, less than "
                               f"promotion.soak_hours {soak:g}")
                for d in dags:
                    n = sum(1 for r in backend.dag_runs(d, limit=50)
                            if r.state == "failed"
                            and (r.start_date or r.run_after or since) >= since_by_dag[d])
                    if n:
                        failed[d] = n
                total = sum(failed.values())
                if total > max_failed:
                    msg.append(f"{total} failed run(s) in {src.name} since the change "
                               f"({', '.join(f'{d}: {n}' for d, n in sorted(failed.items()))}) "
                               f"> promotion.max_failed_runs {max_failed}")
            c.gate = {"passed": not msg, "dags": len(dags), "soak_hours": soak,
                      "ran_hours": None if ran_for is None else round(ran_for, 3),
                      "failed_runs": failed,
                      "message": "; ".join(msg) or (
                          f"ran {ran_for:.2f}h in {src.name} (promotion.soak_hours {soak:g}) on "
                          f"{len(dags)} DAG(s), {sum(failed.values())} failed run(s)")}
            if msg:
                failures.append(f"soak gate, {c.label}: {'; '.join(msg)}")
    finally:
        backend.close()
    return failures


def target_gate(cfg_root: Path, target: str, target_rel: str, new_text: str, at: datetime,
                promoted: list[Candidate]) -> tuple[dict | None, list[str]]:
    """Validate the target with the new file in a scratch copy of the state repo and plan it
    against live Airflow; the safety guards decide."""
    from reconciler.engine import Context, open_backend, plan_env
    from reconciler.plan.model import protect_index
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pausectl-promote-") as tmp:
        scratch = Path(tmp) / "state"
        shutil.copytree(cfg_root, scratch, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", ".pausectl"))
        (scratch / target_rel).write_text(new_text, encoding="utf-8")
        from reconciler.state.loader import DISPLAY_ALIASES
        DISPLAY_ALIASES[str(scratch.resolve())] = str(cfg_root_display(cfg_root))
        try:
            try:
                cfg = load_config(scratch.resolve())
                state = load_env(cfg, target, now=at)
            except PausectlError as e:
                return None, [f"target gate: {target} does not validate with the promoted "
                              f"rules: {e}"]
            backend = None
            try:
                backend = open_backend(cfg, target)
                plan, resolution, live = plan_env(Context(cfg, state, target), backend, at=at)
            except (PausectlError, OSError) as e:
                return None, [f"target gate: cannot plan {target} against its Airflow: {e}"]
            finally:
                if backend is not None:
                    with contextlib.suppress(Exception):
                        backend.close()
            summary = plan.summary()
            if plan.conflicts:
                failures.append(f"target gate: {len(plan.conflicts)} conflict(s) in {target}'s "
                                "plan (tie: error)")
            limit = cfg.max_changes
            if limit is not None and len(plan.changes) > limit:
                failures.append(f"target gate: {target}'s plan changes {len(plan.changes)} "
                                f"DAGs, more than safety.max_changes ({limit})")
            protect = protect_index(cfg, state)
            labels = {c.label for c in promoted}
            hit = []
            if protect:
                for d, dec in resolution.decisions.items():
                    if dec.rule is not None and dec.rule.label() in labels \
                            and _file_of(dec.rule.where).endswith(target_rel) \
                            and protect.lookup(d, (), ()):
                        hit.append(d)
            if hit:
                failures.append(f"target gate: promoted rules decide protected DAG(s) "
                                f"{', '.join(sorted(hit)[:10])} (safety.protect): change them "
                                f"in {target}'s file by hand, reviewed")
            return ({"summary": summary, "changes": [
                {"dag_id": c.dag_id, "action": c.action, "rule": c.rule_name}
                for c in plan.changes]}, failures)
        finally:
            DISPLAY_ALIASES.pop(str(scratch.resolve()), None)


def cfg_root_display(root: Path) -> str:
    try:
        return os.path.relpath(root.resolve(), Path.cwd())
    except ValueError:  # pragma: no cover
        return str(root)


# ---- the whole promotion -----------------------------------------------------------------

def promote(state_dir, source: str, target: str | None, dags: list[str] | None = None,
            branch: str | None = None, dry_run: bool = False, since: str | None = None,
            at: datetime | None = None, checkout: bool = False) -> Promotion:
    at = at or utcnow()
    repo, state_abs, rel = state_location(state_dir)
    cfg = load_config(state_abs)
    cfg.env(source)
    src_ec = cfg.environments[source]
    if target is None:
        target = src_ec.promote_to
        if not target:
            raise PausectlError(f"{source} has no promote_to in pausectl.yaml; pass --to ENV")
    cfg.env(target)
    if target == source:
        raise PausectlError("--from and --to name the same environment")
    if src_ec.promote_to and src_ec.promote_to != target:
        raise PausectlError(f"{source} promotes to {src_ec.promote_to} (promote_to in "
                            f"pausectl.yaml), not {target}")
    path = (cfg.promotion or {}).get("path")
    if path and (source not in path or target not in path
                 or path.index(target) != path.index(source) + 1):
        raise PausectlError(f"promotion.path {path} does not go from {source} to {target}")
    if branch:
        check_branch(branch)
    if since:
        check_ref(since)

    src = load_env(cfg, source, now=at)
    dst = load_env(cfg, target, now=at)
    tgt_ec = cfg.environments[target]
    # the file the promotion rewrites: confined like every path (load_env checked it too);
    # written and committed at its real path, never through a symlink
    from reconciler.core.paths import confine
    tgt_file = confine(tgt_ec.file, state_abs, doc=cfg.doc, at=("environments", target),
                       what=f"state file of environment {target!r}")
    prefix = f"{rel}/" if rel else ""
    target_path = prefix + tgt_file.relative_to(state_abs.resolve()).as_posix()
    # promotion reads committed state: the files involved must match HEAD
    involved = sorted({prefix + Path(os.path.relpath(Path(f).resolve(), state_abs)).as_posix()
                       for f in set(src.files) | {str(state_abs / tgt_ec.file)}})
    dirty = [ln[3:] for ln in git(repo, "status", "--porcelain", "--", *involved).splitlines()
             if ln.strip()]
    if dirty:
        raise PausectlError(f"uncommitted changes in {', '.join(dirty)}: commit or stash them "
                            "first (promotion works on commits)")
    head = resolve_commit(repo, "HEAD")
    res = Promotion(source, target, target_path, dry_run=dry_run)
    res.candidates = find_candidates(cfg, src, dst, dags, keep_promote=bool(tgt_ec.promote_to))
    if not res.candidates:
        res.warnings.append(f"no rule in {source}'s own files is marked promote: true")
        return res

    tgt_doc_plain = _load_plain((state_abs / tgt_ec.file).read_text(encoding="utf-8")) or {}
    tgt_rules = {(("dag" if r.layer == "dag" else "group"), r.name): r for r in dst.all_rules()
                 if Path(_file_of(r.where)).resolve() == (state_abs / tgt_ec.file).resolve()}
    promo_base = last_promotion(repo, head, source, target)
    since_base = None
    if since:
        other = resolve_commit(repo, since)
        bases = repo.merge_base(head, other)
        since_base = bases[0] if bases else None
    commit_times: dict[str, datetime] = {}
    for c in res.candidates:
        cur = _entry(tgt_doc_plain, c.kind, c.name)
        c.target_entry = _plain(cur) if cur is not None else None
        r = tgt_rules.get((c.kind, c.name))
        c.target_where = r.where if r else None
        src_path = prefix + Path(os.path.relpath(Path(_file_of(c.rule.where)).resolve(),
                                                 state_abs)).as_posix()
        src_commit = _last_change(repo, head, src_path, c.kind, c.name)
        if src_commit is not None:
            c.source_commit = src_commit.hexsha
            commit_times[c.name] = commit_info(src_commit).when
        if cur is None:
            c.status = "new"
        elif _norm(cur) == _norm(c.entry):
            c.status = "same"
            continue
        else:
            c.status = "update"
        base = promo_base or since_base or src_commit
        target_then = _entry_at(base, target_path, c.kind, c.name) if base is not None else None
        target_now = _norm(cur)
        if base is not None and target_now != target_then:
            changed = _changes_since(repo, head, base, target_path, c.kind, c.name)
            c.status = "conflict"
            c.conflict = {
                "since": {"commit": base.hexsha,
                          "why": ("last promotion" if promo_base is not None else
                                  f"merge-base with {since}" if since_base is not None else
                                  "source rule's last change")},
                "source": {"where": c.rule.where, "entry": _norm(c.entry)},
                "target": {"where": c.target_where, "entry": target_now, "was": target_then},
                "target_commits": [commit_info(x).to_json() for x in changed],
            }
            res.failures.append(
                f"conflict, {c.label}: {target} changed it since the "
                f"{c.conflict['since']['why']} ({base.hexsha[:10]}); "
                f"{source} ({c.rule.where}) has {_flow(_norm(c.entry))}, "
                f"{target} ({c.target_where}) has {_flow(target_now)}"
                + (f" (changed in {', '.join(x.hexsha[:10] + ' by ' + x.author.name for x in changed[:3])})"
                   if changed else ""))
    todo = res.to_promote
    if not todo:
        if not res.failures:
            res.warnings.append(f"nothing to promote: {target} already has every promotable rule")
        return res

    text = (state_abs / tgt_ec.file).read_text(encoding="utf-8")
    new_text, warns = apply_updates(text, [(c.kind, c.name, c.entry) for c in todo])
    res.warnings += warns
    res.new_text = new_text
    res.failures += soak_gate(cfg, src, todo, at, commit_times)
    plan, fails = target_gate(state_abs, target,
                              tgt_file.relative_to(state_abs.resolve()).as_posix(), new_text,
                              at, todo)
    res.target_plan = plan
    res.failures += fails
    res.message = commit_message(res, head.hexsha)
    if res.failures or dry_run:
        return res
    res.branch = branch or f"pausectl/promote-{source}-to-{target}-{at.strftime('%Y%m%d-%H%M%S')}"
    check_branch(res.branch)
    res.commit = commit_on_branch(repo, head, target_path, new_text, res.branch, res.message)
    if checkout:
        git(repo, "checkout", "-q", res.branch, "--")
    return res


def _flow(entry) -> str:
    if entry is None:
        return "no entry"
    import json
    return json.dumps(entry, default=str, sort_keys=True)


def commit_message(res: Promotion, source_sha: str) -> str:
    todo = res.to_promote
    lines = [f"pausectl: promote {res.source} -> {res.target}: {len(todo)} change(s)", ""]
    for c in todo:
        state = "paused" if c.rule.paused else "running"
        bits = [f"{c.label}: {state}"]
        if c.rule.reason:
            bits.append(f"reason {c.rule.reason!r}")
        if c.rule.owner:
            bits.append(f"owner {c.rule.owner}")
        if c.rule.ticket:
            bits.append(f"ticket {c.rule.ticket}")
        lines.append(f"- {', '.join(bits)} [{c.status}, from {c.rule.where}]")
    lines.append("")
    gates = [c.gate for c in todo if c.gate]
    if gates and all(g["passed"] for g in gates):
        ran = [g["ran_hours"] for g in gates if g.get("ran_hours") is not None]
        lines.append(f"Soak: ran in {res.source} for at least {min(ran):.1f}h "
                     f"(promotion.soak_hours {gates[0]['soak_hours']:g}) without failed runs"
                     if ran else f"Soak: checked in {res.source}")
    if res.target_plan:
        s = res.target_plan["summary"]
        lines.append(f"Target plan: {s['pause']} to pause, {s['unpause']} to unpause in "
                     f"{res.target}")
    lines += ["", f"{TRAILER}: {res.source} -> {res.target}",
              f"Pausectl-Source-Commit: {source_sha}"]
    return "\n".join(lines) + "\n"


def commit_on_branch(repo, head, path: str, text: str, branch: str, message: str) -> str:
    """One commit on a new branch from HEAD changing `path`, without touching the working tree
    or the index (a private index file)."""
    if any(h.name == branch for h in repo.heads):
        raise PausectlError(f"branch {branch!r} already exists")
    with tempfile.TemporaryDirectory(prefix="pausectl-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo, "read-tree", head.hexsha, env=env)
        blob = git(repo, "hash-object", "-w", "--stdin", input=text).strip()
        mode = "100644"
        with contextlib.suppress(PausectlError):
            out = git(repo, "ls-tree", head.hexsha, "--", path).split()
            if out:
                mode = out[0]
        if mode not in ("100644", "100755"):   # a symlink or submodule at that path in git
            raise PausectlError(f"{path} is not a regular file in git (mode {mode}); "
                                "promotion rewrites regular files only")
        git(repo, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
        tree = git(repo, "write-tree", env=env).strip()
        sha = git(repo, "commit-tree", tree, "-p", head.hexsha, "-F", "-", input=message).strip()
    # the empty old value makes update-ref refuse when the branch appeared meanwhile
    git(repo, "update-ref", f"refs/heads/{branch}", sha, "0" * 40)
    return sha


# ---- rendering ---------------------------------------------------------------------------

def promotion_text(res: Promotion, stream=None) -> None:
    w = (stream or sys.stdout).write
    w(f"promote {res.source} -> {res.target} ({res.target_file})"
      f"{' [dry run]' if res.dry_run else ''}\n")
    for c in res.candidates:
        state = "paused" if c.rule.paused else "running"
        w(f"  {c.status:8} {c.label}: {state}"
          f"{'  reason=' + repr(c.rule.reason) if c.rule.reason else ''}"
          f"{'  owner=' + c.rule.owner if c.rule.owner else ''}  from {c.rule.where}"
          f"{'  -> ' + c.target_where if c.target_where else ''}\n")
        if c.gate:
            w(f"           soak gate: {'passed' if c.gate['passed'] else 'FAILED'} "
              f"({c.gate['message']})\n")
        if c.conflict:
            cf = c.conflict
            w(f"           conflict since {cf['since']['why']} ({cf['since']['commit'][:10]}):\n"
              f"             {res.source} {cf['source']['where']}: {_flow(cf['source']['entry'])}\n"
              f"             {res.target} {cf['target']['where']}: {_flow(cf['target']['entry'])}\n"
              f"             {res.target} then: {_flow(cf['target']['was'])}\n")
            for x in cf["target_commits"]:
                w(f"             changed in {x['commit'][:10]} by {x['author']} on "
                  f"{x['date'][:10]}: {x['summary']}\n")
    if res.target_plan:
        s = res.target_plan["summary"]
        w(f"target plan ({res.target}, with the promoted rules): {s['pause']} to pause, "
          f"{s['unpause']} to unpause, {s['skipped']} skipped, {s['conflicts']} conflicts\n")
    for warning in res.warnings:
        w(f"warning: {warning}\n")
    for f in res.failures:
        w(f"BLOCKED: {f}\n")
    if res.commit:
        w(f"created branch {res.branch} at {res.commit[:12]} changing {res.target_file}; "
          f"push it and open a pull request:\n  git push origin {res.branch}\n")
    elif res.dry_run and res.to_promote and not res.failures:
        w(f"dry run: would commit on a new branch:\n\n{res.message}")
