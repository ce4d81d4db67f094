"""A fast yes for valid documents: the schemas compiled to plain Python checks.

jsonschema takes ~0.3 s over a 2,000-rule environment file (and ~0.15 s to import); almost
every file is valid, and then no message is needed. `compile_schema` turns a schema (with
its $refs inlined, schema.py) into `check(value) -> True | False | None`:

- True: valid, proven with exactly the rules jsonschema applies (Draft 2020-12);
- False: invalid; None: not decided here (a keyword or a value type this does not know, an
  integer written as 1.0, enum values of mixed numeric types...).

Only True is trusted: False and None run jsonschema itself, so every error message is
jsonschema's, as before. `if`, `oneOf`, `anyOf` combine the three values exactly (a None
under them makes the whole None), so a doubt never turns into a yes.
"""

from __future__ import annotations

import re
from typing import Callable

Check = Callable[[object], "bool | None"]

# annotations: no effect on validity
_IGNORED = {"description", "title", "$comment", "examples", "default", "$schema", "$id",
            "deprecated", "readOnly", "writeOnly"}
_PLAIN = (dict, list, str, int, float, bool, type(None))


def _json_type(v) -> str | None:
    t = type(v)
    if t is bool:
        return "boolean"
    if t is int:
        return "integer"
    if t is float:
        return "number"
    if t is str:
        return "string"
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    return None


def _type_check(want) -> Check:
    wanted = set(want) if isinstance(want, list) else {want}

    def check(v):
        t = _json_type(v)
        if t is None:
            return None
        if t in wanted or (t == "integer" and "number" in wanted):
            return True
        if t == "number" and "integer" in wanted and v.is_integer():
            return None           # 1.0 is an integer to jsonschema: not decided here
        return False
    return check


def _enum_check(values: list) -> Check:
    # strings, booleans and null: equal only to themselves (jsonschema: true is not 1)
    if not all(type(x) in (str, bool, type(None)) for x in values):
        return lambda v: None
    allowed = {(type(x), x) for x in values}
    scalars = (str, bool, type(None))
    return lambda v: (((type(v), v) in allowed) if type(v) in scalars
                      else None if _json_type(v) is None else False)


def _number(v) -> bool:
    return type(v) in (int, float)


def _bound(key: str, limit) -> Check:
    test = {"minimum": lambda v: v >= limit, "maximum": lambda v: v <= limit,
            "exclusiveMinimum": lambda v: v > limit,
            "exclusiveMaximum": lambda v: v < limit}[key]
    return lambda v: test(v) if _number(v) else True


def _object(schema: dict) -> Check:
    props = {k: compile_schema(s) for k, s in (schema.get("properties") or {}).items()}
    extra = schema.get("additionalProperties", True)
    extra_check = None if isinstance(extra, bool) else compile_schema(extra)
    required = list(schema.get("required") or ())
    names = compile_schema(schema["propertyNames"]) if "propertyNames" in schema else None
    min_props = schema.get("minProperties")

    def check(v):
        if not isinstance(v, dict):
            return True
        result = True
        for k in required:
            if k not in v:
                return False
        if min_props is not None and len(v) < min_props:
            return False
        for k, item in v.items():
            c = props.get(k)
            if c is None:
                if extra is False:
                    return False
                c = extra_check
            r = True if c is None else c(item)
            if r is False:
                return False
            if r is None:
                result = None
            if names is not None:
                r = names(k)
                if r is False:
                    return False
                if r is None:
                    result = None
        return result
    return check


def _array(schema: dict) -> Check:
    items = compile_schema(schema["items"]) if "items" in schema else None
    lo, hi = schema.get("minItems"), schema.get("maxItems")
    unique = schema.get("uniqueItems", False)

    def check(v):
        if not isinstance(v, list):
            return True
        if (lo is not None and len(v) < lo) or (hi is not None and len(v) > hi):
            return False
        result = True
        if unique:
            if not all(type(x) is str for x in v):
                result = None
            elif len(set(v)) != len(v):
                return False
        if items is not None:
            r = _fold(items(x) for x in v)
            if r is not True:
                return r
        return result
    return check


def _string(schema: dict) -> Check:
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None

    def check(v):
        if type(v) is not str:
            return True
        if (lo is not None and len(v) < lo) or (hi is not None and len(v) > hi):
            return False
        return pattern is None or pattern.search(v) is not None
    return check


def _fold(results) -> bool | None:
    """All of three-valued results: False at the first False, else None if any None."""
    result = True
    for r in results:
        if r is False:
            return False
        if r is None:
            result = None
    return result


def _combine(checks: list[Check]) -> Check:
    def check(v):
        return _fold(c(v) for c in checks)
    return check


def _if_then(schema: dict) -> Check:
    cond = compile_schema(schema["if"])
    then = compile_schema(schema.get("then", True))
    other = compile_schema(schema.get("else", True))

    def check(v):
        r = cond(v)
        return None if r is None else then(v) if r else other(v)
    return check


def _one_of(subs: list, kind: str) -> Check:
    checks = [compile_schema(s) for s in subs]

    def check(v):
        results = [c(v) for c in checks]
        if kind == "anyOf" and True in results:
            return True
        if None in results:
            return None
        return results.count(True) == 1 if kind == "oneOf" else False
    return check


_OBJECT = {"properties", "additionalProperties", "required", "propertyNames", "minProperties"}
_ARRAY = {"items", "minItems", "maxItems", "uniqueItems"}
_STRING = {"minLength", "maxLength", "pattern"}
_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}


def compile_schema(schema) -> Check:
    """`check(value) -> True | False | None` for one schema (module doc)."""
    if schema is True:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, dict):
        return lambda v: None
    known = _IGNORED | _OBJECT | _ARRAY | _STRING | _BOUNDS | {
        "type", "enum", "const", "if", "then", "else", "oneOf", "anyOf", "allOf"}
    if set(schema) - known:
        return lambda v: None     # a keyword this does not know: jsonschema decides
    checks: list[Check] = []
    if "type" in schema:
        checks.append(_type_check(schema["type"]))
    if "enum" in schema:
        checks.append(_enum_check(schema["enum"]))
    if "const" in schema:
        checks.append(_enum_check([schema["const"]]))
    checks += [_bound(k, schema[k]) for k in _BOUNDS if k in schema]
    if set(schema) & _STRING:
        checks.append(_string(schema))
    if set(schema) & _OBJECT:
        checks.append(_object(schema))
    if set(schema) & _ARRAY:
        checks.append(_array(schema))
    if "if" in schema:
        checks.append(_if_then(schema))
    for kind in ("oneOf", "anyOf"):
        if kind in schema:
            checks.append(_one_of(schema[kind], kind))
    checks += [compile_schema(s) for s in schema.get("allOf", ())]
    return checks[0] if len(checks) == 1 else _combine(checks)
