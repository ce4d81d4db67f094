"""JSON Schema validation of every file format, with errors pointing at file:line:col."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.state.yamlload import LoadedYaml

SCHEMA_FILES = ("pausectl.schema.json", "state.schema.json", "snapshot.schema.json",
                "plan.schema.json", "statetest.schema.json", "status.schema.json")


def schema_dir() -> Path:
    """Schemas ship inside the wheel (reconciler/schemas); in a source tree they are ../schemas."""
    package = Path(__file__).resolve().parent.parent   # reconciler/
    for d in (package / "schemas", package.parent / "schemas"):
        if (d / "plan.schema.json").is_file():
            return d
    raise PausectlError("JSON schemas not found (broken installation)")


@lru_cache(maxsize=None)
def _schemas() -> dict[str, dict]:
    d = schema_dir()
    return {f: json.loads((d / f).read_text(encoding="utf-8")) for f in SCHEMA_FILES}


def _inline_refs(node, current: str):
    """Replace every $ref with its target. Our schemas are not recursive, and jsonschema's
    $ref resolution is ~40% of validation time on a 2,000-rule file."""
    if isinstance(node, list):
        return [_inline_refs(x, current) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target_file, _, pointer = node["$ref"].partition("#")
        target_file = target_file or current
        target = _schemas()[target_file]
        for part in [p for p in pointer.split("/") if p]:
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        resolved = _inline_refs(target, target_file)
        if rest:
            return {"allOf": [resolved, _inline_refs(rest, current)]}
        return resolved
    return {k: (v if k in ("$defs",) else _inline_refs(v, current)) for k, v in node.items()}


@lru_cache(maxsize=None)
def _fast(name: str):
    """The schema as plain checks (schema_fast.py): a proven-valid document skips jsonschema,
    its import included; anything else is validated by jsonschema, as before."""
    from reconciler.state.schema_fast import compile_schema
    schema = _inline_refs(_schemas()[name], name)
    schema.pop("$defs", None)
    return compile_schema(schema)


@lru_cache(maxsize=None)
def _validator(name: str):
    from jsonschema import Draft202012Validator, FormatChecker
    schema = _inline_refs(_schemas()[name], name)
    schema.pop("$defs", None)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def load_schema(name: str) -> dict:
    return json.loads((schema_dir() / name).read_text(encoding="utf-8"))


def _path_text(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _describe(error) -> tuple[tuple, str]:
    """(json path to point at, one-line message) for a jsonschema error."""
    path = tuple(error.absolute_path)
    where = _path_text(path)
    v = error.validator
    if v in ("additionalProperties", "unevaluatedProperties"):
        inst = error.instance if isinstance(error.instance, dict) else {}
        known = set()
        for key in ("properties",):
            known |= set((error.schema or {}).get(key, {}) or {})
        extra = sorted(k for k in inst if k not in known) or sorted(inst)
        # point at the first unexpected key itself
        import re
        m = re.findall(r"'([^']+)'", error.message)
        names = [n for n in m if n in inst] or extra
        key = names[0] if names else None
        if key is not None:
            return path + (key,), f"{where}: unknown key {key!r}"
        return path, f"{where}: unknown key"
    if v == "required":
        import re
        m = re.search(r"'([^']+)' is a required property", error.message)
        missing = m.group(1) if m else "?"
        hint = ""
        if missing in ("reason", "owner"):
            hint = " (every pause carries a reason and an owner)"
        return path, f"{where}: missing required key {missing!r}{hint}"
    if v == "propertyNames" or ("propertyNames" in error.relative_schema_path
                                and isinstance(error.instance, str)):
        # jsonschema reports a bad key by its sub-schema (pattern...) at the parent's path
        return path + (error.instance,), f"{where}: invalid name {error.instance!r}"
    if v in ("oneOf", "anyOf") and error.context and all(
            e.validator in ("type", "const") and tuple(e.absolute_path) == path
            for e in error.context):
        # a scalar of a few kinds (`paused`: a boolean or "drain"): name them all
        want = [e.validator_value if e.validator == "type" else json.dumps(e.validator_value)
                for e in error.context]
        return path, f"{where}: expected {' or '.join(want)}, got {_json_type(error.instance)}"
    if v in ("oneOf", "anyOf") and error.context:
        from jsonschema.exceptions import best_match
        # the branch whose type fits the value says what is wrong inside it (a list of
        # dag ids holding a number), not "expected string" from the other branch
        inner = [e for e in error.context
                 if not (e.validator == "type" and tuple(e.absolute_path) == path)]
        return _describe(best_match(inner or error.context))
    if v == "enum":
        allowed = ", ".join(json.dumps(x) for x in error.validator_value)
        return path, f"{where}: {json.dumps(error.instance)} is not one of {allowed}"
    if v == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return path, f"{where}: expected {want}, got {_json_type(error.instance)}"
    if v == "pattern":
        return path, f"{where}: {error.instance!r} does not match the expected format"
    msg = error.message
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return path, f"{where}: {msg}"


# bool before int: True is an int to isinstance, a boolean to JSON
_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "array"), (dict, "object"))


def _json_type(v) -> str:
    if v is None:
        return "null"
    return next((name for kind, name in _JSON_TYPES if isinstance(v, kind)), type(v).__name__)


def schema_errors(doc: LoadedYaml, schema_name: str) -> list[PausectlError]:
    """Every schema violation of doc, each located at its node, in file order."""
    if _fast(schema_name)(doc.data) is True:
        return []
    validator = _validator(schema_name)
    out = []
    seen = set()
    for err in validator.iter_errors(doc.data):
        path, message = _describe(err)
        message += _as_written(doc, path, message)
        e = doc.error(path, message)
        key = (e.line, e.col, e.message)
        if key not in seen:
            seen.add(key)
            out.append(e)
    out.sort(key=lambda e: (e.line or 0, e.col or 0))
    return out


def _as_written(doc: LoadedYaml, path: tuple, message: str) -> str:
    """For a string field holding what YAML 1.1 read as a number, boolean or null (`007`,
    `1e3`, `yes`, `null`): what was written and how to keep it a string."""
    import re
    src = doc.sources.get(path)
    m = re.search(r": expected ([a-z ]+), got ([a-z]+)$", message)
    if src is None or not m or "string" not in m.group(1).split(" or "):
        return ""
    return f" ({src} as written; YAML reads it as {m.group(2)}: quote it, \"{src}\")"


def validate_doc(doc: LoadedYaml, schema_name: str) -> None:
    errors = schema_errors(doc, schema_name)
    if errors:
        raise errors[0]


def validate_json(data, schema_name: str) -> list[str]:
    """Plain messages for a JSON value (plans, snapshots built in memory)."""
    return [f"{_path_text(tuple(e.absolute_path))}: {e.message}"
            for e in _validator(schema_name).iter_errors(data)]
