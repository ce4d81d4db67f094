"""Fuzz the parsers with hypothesis: the YAML loader, the state schema + semantic loading,
the snapshot parser and safejson, and (a few examples) the whole CLI. Any exception other than
PausectlError, or "internal error" in the CLI's output, fails.

Fixed seed (derandomize) and bounded budgets (max_examples), so CI time stays small and a
failure reproduces; the whole module runs in well under a minute. For a longer exploratory
run: PAUSECTL_FUZZ_SCALE=20 PAUSECTL_FUZZ_RANDOM=1 (random seeds, 20x the examples).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_cli import assert_clean, base_repo, run
from helpers import BASE_FILES, COMMON_YAML, PAUSECTL_YAML, PROD_YAML
from reconciler.core.errors import PausectlError

SCALE = int(os.environ.get("PAUSECTL_FUZZ_SCALE", "1"))
FUZZ = settings(derandomize=os.environ.get("PAUSECTL_FUZZ_RANDOM") != "1", deadline=None,
                database=None, max_examples=300 * SCALE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# pieces hostile YAML is made of: YAML 1.1 scalars, anchors/aliases, tags, flow syntax, NUL,
# control characters, huge numbers
YAML_TOKENS = ["007", "1:30", "yes", "null", "~", ".nan", "-.inf", "1.0e+999", "9" * 30,
               "0x" + "f" * 30, "&a", "*a", "*b", "&b [*a, *a, *a]", "!!python/name:os.system",
               "!!binary", "!!set", "<<: ", "{", "}", "[", "]", ",", ": ", "- ", "? ", "|", ">",
               "'", '"', "#", "\n", "\n  ", "\t", "\x00", "\x1b[2J", "\ufeff", "%YAML 1.1\n",
               "---\n", "...\n", "@reboot", "0 0 30 2 *", "9999-12-31T23:59:59-01:00",
               "2026-02-30", "*a*a*a*a*a*a*a*a*b", "../", "/etc/passwd", "include: [",
               "dags:", "groups:", "paused: ", "priority: ", "windows: [{cron: "]


@st.composite
def mutated(draw, base: str, tokens=YAML_TOKENS):
    """`base` with a few random edits: tokens inserted, spans deleted or duplicated."""
    text = base
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "dup", "replace"]))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(tokens)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)):]
        elif op == "dup":
            text = text[:pos] + text[pos:pos + draw(st.integers(1, 40))] * 3 + text[pos:]
        else:
            end = pos + draw(st.integers(1, 10))
            text = text[:pos] + draw(st.sampled_from(tokens)) + text[end:]
    return text


def _only_clean_errors(fn, *args):
    try:
        fn(*args)
    except PausectlError as e:
        assert str(e) and "\n" not in str(e).strip(), repr(str(e))


# ---- the YAML loader ---------------------------------------------------------------------------

@FUZZ
@given(st.one_of(mutated(PROD_YAML), mutated(PAUSECTL_YAML), mutated(COMMON_YAML),
                 st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!'\"#|>?\n\t 0123.~%")),
                         max_size=200)))
def test_yaml_loader(text):
    from reconciler.state.yamlload import load_yaml_bytes
    for raw in (text.encode("utf-8", "surrogatepass"), text.encode("utf-16")):
        _only_clean_errors(load_yaml_bytes, raw, "fuzz.yaml")


# ---- the state schema + semantic loading -------------------------------------------------------

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**25, 10**25),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                   st.sampled_from(["@reboot", "0 0 30 2 *", "@daily", "2h", "400d", "Europe",
                                    "9999-12-31T23:59:59-01:00", "*a*a*a*b", "../x.yaml",
                                    "/etc/passwd", "common.yaml", "snapshots", "etl_*"]))
KEYS = st.sampled_from(["environment", "include", "defaults", "dags", "groups", "protect",
                        "sensors", "lint", "paused", "reason", "owner", "until", "from",
                        "windows", "cron", "duration", "timezone", "priority", "match",
                        "tags", "dag_id", "owners", "name", "budget", "cascade", "unmanaged",
                        "billing_daily", "007", "yes"])
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)), max_leaves=25)


@st.composite
def state_docs(draw):
    """A prod.yaml near the schema: the base document with some subtrees replaced."""
    doc = yaml.safe_load(PROD_YAML)
    for _ in range(draw(st.integers(1, 4))):
        node, key = doc, None
        path = draw(st.lists(st.sampled_from(["dags", "billing_daily", "groups", 0, "match",
                                              "windows", "defaults", "until", "priority",
                                              "include", "paused", "cron"]), max_size=4))
        for p in path:
            if isinstance(node, dict) and p in node:
                node, key = node, p
                if isinstance(node[p], (dict, list)):
                    node = node[p]
            elif isinstance(node, list) and isinstance(p, int) and p < len(node):
                node, key = node, p
                if isinstance(node[p], (dict, list)):
                    node = node[p]
        if isinstance(node, dict):
            node[key if key in node else draw(KEYS)] = draw(VALUES)
        elif isinstance(node, list) and node:
            node[0] = draw(VALUES)
    return doc


def _load_state(files: dict) -> None:
    from reconciler.state.loader import load_config, load_env
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "state"
        for rel, text in {**BASE_FILES, **files}.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        cfg = load_config(root)
        load_env(cfg, "prod")


@settings(FUZZ, max_examples=200 * SCALE)
@given(state_docs())
def test_state_schema_structured(doc):
    text = yaml.safe_dump(doc, allow_unicode=True, width=10**6)
    _only_clean_errors(_load_state, {"prod.yaml": text})


@settings(FUZZ, max_examples=200 * SCALE)
@given(st.one_of(mutated(PROD_YAML).map(lambda t: {"prod.yaml": t}),
                 mutated(PAUSECTL_YAML).map(lambda t: {"pausectl.yaml": t})))
def test_state_schema_mutated(files):
    _only_clean_errors(_load_state, files)


# ---- the snapshot parser and safejson -------------------------------------------------------------

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=20), st.sampled_from(["false", "true", "0", ""]))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
DAG_KEYS = st.sampled_from(["dag_id", "is_paused", "tags", "owners", "is_stale",
                            "has_import_errors", "fileloc", "max_active_runs",
                            "last_parsed_time", "timetable_summary"])


@st.composite
def snapshots(draw):
    dags = draw(st.lists(st.dictionaries(DAG_KEYS, JSON_VALUES, max_size=6), max_size=4))
    for d in dags:      # most entries near-valid, so the parser gets past the first one
        if draw(st.booleans()):
            d.setdefault("dag_id", draw(st.text(min_size=1, max_size=10)))
            d.setdefault("is_paused", draw(st.booleans()))
    doc = {"dags": dags}
    if draw(st.booleans()):
        doc["assets"] = draw(JSON_VALUES)
    return json.dumps(doc, indent=draw(st.sampled_from([None, 1])))


JSON_TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 40, "[" * 50, "]" * 50, "{", "}",
               '"', "\\", "\\u0000", "\x00", ",", ":", "true", '"false"', "null", "\ufeff"]
SNAPSHOT = BASE_FILES["snapshots/prod.json"]


@settings(FUZZ, max_examples=200 * SCALE)
@given(st.one_of(snapshots(), mutated(SNAPSHOT, JSON_TOKENS)))
def test_snapshot_parser(raw):
    from reconciler.live.snapshot import parse_snapshot
    from reconciler.core.safejson import loads
    _only_clean_errors(parse_snapshot, raw, "fuzz.json")
    _only_clean_errors(loads, raw.encode("utf-8", "surrogatepass"), "fuzz.json")
    _only_clean_errors(loads, raw, None)


# ---- the whole CLI, a few examples ----------------------------------------------------------------

@settings(FUZZ, max_examples=25 * SCALE)
@given(mutated(PROD_YAML), mutated(SNAPSHOT, JSON_TOKENS))
def test_cli_plan(prod_yaml, snapshot):
    with tempfile.TemporaryDirectory() as tmp:
        base_repo(Path(tmp), {"prod.yaml": prod_yaml.encode("utf-8", "surrogatepass"),
                              "snapshots/prod.json": snapshot.encode("utf-8", "surrogatepass")})
        for argv in (["validate"], ["plan", "prod", "--format", "json"]):
            r = run(argv, Path(tmp))
            assert_clean(r, argv, code=r.code if r.code in (0, 1) else -1)
