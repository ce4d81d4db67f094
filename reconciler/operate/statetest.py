"""`pausectl test`: unit tests for the desired state, like `opa test` or `terraform test`.

A test file (`state/tests/*.yaml`, schema `schemas/statetest.schema.json`) lists cases; each
names an environment, a time (`at`, optionally read in a `timezone`), the live Airflow it
assumes (inline DAGs, a snapshot, or by default the environment's own snapshot backend;
`--live` uses the environment's real backend instead), optional `files` that replace or add
state files for this case only, and what must come out:

    expect:
      dags: {etl_orders: paused, billing_daily: {state: running, rule: billing_daily}}
      conflicts: [x]          # exactly these DAGs conflict
      summary: {pause: 3}     # the plan's summary counts named here
      errors: [{message: "unknown key", file: prod.yaml, line: 4}]   # validation errors

Each case runs the same stages as `pausectl plan` (engine.load, engine.plan_env): nothing
here decides on its own, so a test can never pass for a state `plan` would treat otherwise.
A DAG's state is `conflict | skipped | held | draining | unmanaged` when the plan says so,
`missing` when a rule names a DAG Airflow lacks, else `paused | running` (git's decision).
Failures carry the assertion's file:line, expected vs got, and the rule that decided.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import iso, parse_timestamp, utcnow
from reconciler.state.model import DISPLAY_ALIASES, display_path
from reconciler.state.schema import schema_errors
from reconciler.state.yamlload import LoadedYaml, load_yaml_file

TESTS_DIR = "tests"
SCHEMA = "statetest.schema.json"


@dataclass
class Failure:
    file: str
    line: int
    test: str
    subject: str            # a dag_id, "conflicts", "summary.pause", "errors", "state"
    expected: str
    got: str
    rule: str | None = None  # the deciding rule: "group x (state/common.yaml:9): why"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Case:
    name: str
    environment: str
    at: datetime
    live: dict | None
    files: dict
    expect: dict
    doc: LoadedYaml
    index: int

    def line(self, *path) -> int:
        return self.doc.mark(("tests", self.index) + path)[0]

    def fail(self, path: tuple, subject: str, expected, got, rule: str | None = None) -> Failure:
        return Failure(self.doc.path, self.line(*path), self.name, subject, str(expected),
                       str(got), rule)


@dataclass
class CaseResult:
    case: Case
    checks: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        c = self.case
        return {"name": c.name, "file": c.doc.path, "line": c.line(), "environment":
                c.environment, "at": iso(c.at), "passed": self.passed, "checks": self.checks,
                "failures": [f.to_json() for f in self.failures]}


# ---- finding and reading test files --------------------------------------------------------

def test_files(root: Path, paths: list[str] | None = None) -> list[Path]:
    """PATHS (files, or directories searched for *.yaml), default `<state>/tests/`."""
    found: list[Path] = []
    for p in [Path(x) for x in paths] if paths else [root / TESTS_DIR]:
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml")
                            and q.is_file())
        elif p.is_file():
            found.append(p)
        elif paths:
            raise PausectlError("test file not found", str(p))
    return found


def _at(doc: LoadedYaml, i: int, spec: dict) -> datetime:
    raw = spec.get("at")
    if raw is None:
        return utcnow()
    try:
        at = parse_timestamp(raw)
        text = raw.strip()
        naive = not text.endswith(("Z", "z")) and datetime.fromisoformat(text).tzinfo is None
        if spec.get("timezone") and naive:     # wall-clock time in that zone, DST-correct
            from zoneinfo import ZoneInfo
            at = at.replace(tzinfo=ZoneInfo(spec["timezone"]))
    except (ValueError, KeyError) as e:   # KeyError: ZoneInfoNotFoundError
        raise doc.error(("tests", i, "at"), f"tests[{i}].at: bad time {raw!r} ({e})") from None
    return at


def load_cases(path: Path) -> list[Case]:
    """The cases of one test file; a file of the wrong shape raises at its file:line."""
    doc = load_yaml_file(path, display_path(Path.cwd(), path.resolve()))
    errors = schema_errors(doc, SCHEMA)
    if errors:
        raise errors[0]
    out = []
    for i, spec in enumerate(doc.data["tests"]):
        for name in spec.get("files") or {}:
            if ".." in Path(name).parts:
                raise doc.error(("tests", i, "files", name),
                                f"tests[{i}].files: {name!r} leaves the state repo")
        out.append(Case(spec["name"], spec["environment"], _at(doc, i, spec), spec.get("live"),
                        dict(spec.get("files") or {}), spec["expect"], doc, i))
    return out


# ---- running one case ---------------------------------------------------------------------

@contextlib.contextmanager
def _work_root(root: Path, case: Case):
    """The state repo the case sees: `root` itself, or a scratch copy with its `files`
    (named in messages as the real repo's files, like a --ref checkout)."""
    if not case.files:
        yield root, None
        return
    with tempfile.TemporaryDirectory(prefix="pausectl-test-") as tmp:
        work = Path(tmp) / "state"
        shutil.copytree(root, work, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", ".pausectl", TESTS_DIR))
        for name, text in case.files.items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        real = str(work.resolve())
        DISPLAY_ALIASES[real] = display_path(Path.cwd(), root.resolve())
        try:
            yield work, Path(tmp)
        finally:
            DISPLAY_ALIASES.pop(real, None)


@contextlib.contextmanager
def _backend(ctx, case: Case, live: bool, scratch: Path | None):
    from reconciler.engine import open_backend
    from reconciler.live.snapshot import SnapshotBackend, write_json_atomic
    spec = case.live or {}
    if live or not spec:
        if not live and ctx.cfg.env(case.environment).backend.get("type") != "snapshot":
            raise PausectlError(f"tests[{case.index}]: environment {case.environment!r} has no "
                                "snapshot backend: give `live:` (DAGs or a snapshot) or run "
                                "with --live", case.doc.path, case.line())
        backend = open_backend(ctx.cfg, case.environment)
    elif "snapshot" in spec:
        from reconciler.core.paths import confine
        path = confine(spec["snapshot"], ctx.cfg.root, doc=case.doc,
                       at=("tests", case.index, "live", "snapshot"), what="snapshot")
        backend = SnapshotBackend(case.environment, path, ctx.cfg.rel(path))
    else:
        tmp = scratch or Path(tempfile.mkdtemp(prefix="pausectl-test-"))
        path = tmp / f"live-{case.index}.json"
        dags = [{"dag_id": d["dag_id"], "is_paused": d.get("paused", False),
                 "tags": d.get("tags", []), "owners": d.get("owners", []),
                 "is_stale": d.get("is_stale", False),
                 "has_import_errors": d.get("has_import_errors", False)} for d in spec["dags"]]
        write_json_atomic(path, {"dags": dags, "events": spec.get("events", [])})
        backend = SnapshotBackend(case.environment, path, f"{case.doc.path}:{case.line('live')}")
    try:
        yield backend
    finally:
        backend.close()
        if scratch is None and not live and spec and "dags" in spec:
            shutil.rmtree(path.parent, ignore_errors=True)


def dag_states(plan, resolution) -> dict[str, str]:
    """Every DAG the plan knows, with the state `expect.dags` compares (module doc)."""
    out = {d: ("unmanaged" if dec.unmanaged else "paused" if dec.paused else "running")
           for d, dec in resolution.decisions.items()}
    out.update({m.dag_id: "missing" for m in plan.missing})
    # later kinds win: a held DAG is held, whatever git decides
    drains = [c for c in plan.changes if c.drain is not None]   # `paused: drain` pauses
    for kind, records in (("draining", drains), ("held", plan.held), ("skipped", plan.skipped),
                          ("conflict", plan.conflicts)):
        out.update({r.dag_id: kind for r in records})
    return out


def _rule_matches(want: str, rule, shown_root: str) -> bool:
    """`want` names `rule` by name, label (`group x`), or file[:line] relative to the repo."""
    if rule is None:
        return want == "none"
    if want in (rule.name, rule.label()):
        return True
    file, _, line = rule.where.rpartition(":")
    names = {os.path.normpath(file), os.path.normpath(os.path.relpath(file, shown_root))}
    wfile, sep, wline = want.rpartition(":")
    if sep and wline.isdigit():
        return os.path.normpath(wfile) in names and wline == line
    return os.path.normpath(want) in names


def _deciding(resolution, dag_id: str, live_by_id: dict) -> str | None:
    dec = resolution.decisions.get(dag_id)
    if dec is None:
        return None
    if dec.rule is None:
        return "no rule decides it" + (" (conflict)" if dec.conflict else " (unmanaged)")
    dag = live_by_id.get(dag_id)
    head = f"{dec.rule.label()} ({dec.rule.where})"
    why = resolution.why(dec, dag) if dag is not None else ""
    return why if why.startswith(head) else f"{head}: {why}" if why else head


def _check_dags(case: Case, result: CaseResult, plan, resolution, live, shown_root) -> None:
    states = dag_states(plan, resolution)
    batch_of = {d: i + 1 for i, b in enumerate(plan.batches) for d in b.dag_ids}
    by_id = {d.dag_id: d for d in live}
    named = {m.dag_id: m.rule for m in plan.missing}
    for dag_id, want in (case.expect.get("dags") or {}).items():
        want = {"state": want} if isinstance(want, str) else want
        path = ("expect", "dags", dag_id)
        got_state = states.get(dag_id, "absent")
        dec = resolution.decisions.get(dag_id)
        deciding = _deciding(resolution, dag_id, by_id) or (
            f"named by {named[dag_id]}" if dag_id in named else None)
        if "state" in want:
            result.checks += 1
            if want["state"] != got_state:
                got = got_state if got_state != "absent" else \
                    "absent (not in live Airflow, no rule names it)"
                result.failures.append(case.fail(path, dag_id, want["state"], got, deciding))
        if "rule" in want:
            result.checks += 1
            rule = dec.rule if dec is not None else None
            if not _rule_matches(want["rule"], rule, shown_root):
                got = f"{rule.label()} ({rule.where})" if rule is not None else "no rule"
                result.failures.append(case.fail(path + ("rule",), f"{dag_id} rule",
                                                 want["rule"], got, deciding))
        if "batch" in want:
            result.checks += 1
            if want["batch"] != batch_of.get(dag_id):
                got = batch_of.get(dag_id) or "no batch (the plan does not change it)"
                result.failures.append(case.fail(path + ("batch",), f"{dag_id} batch",
                                                 want["batch"] or "no batch", got, deciding))


def _check_plan(case: Case, result: CaseResult, plan) -> None:
    if "conflicts" in case.expect:
        result.checks += 1
        want, got = sorted(case.expect["conflicts"]), sorted(c.dag_id for c in plan.conflicts)
        if want != got:
            rules = "; ".join(f"{c.dag_id}: {' vs '.join(c.rules)}" for c in plan.conflicts)
            result.failures.append(case.fail(("expect", "conflicts"), "conflicts",
                                             want or "none", got or "none", rules or None))
    summary = plan.summary()
    for key, want in (case.expect.get("summary") or {}).items():
        result.checks += 1
        if summary[key] != want:
            result.failures.append(case.fail(("expect", "summary", key), f"summary.{key}",
                                             want, summary[key]))


def _rel_file(file: str | None, shown_root: str) -> str | None:
    return None if file is None else os.path.normpath(os.path.relpath(file, shown_root))


def _check_errors(case: Case, result: CaseResult, work: Path, shown_root: str) -> bool:
    """Validation errors against `expect.errors`; True when the state is valid."""
    from reconciler.operate.validate import validate_repo
    errors = [p for p in validate_repo(work) if p["severity"] == "error"]
    wanted = case.expect["errors"]
    if not wanted:
        result.checks += 1
        if errors:
            e = errors[0]
            result.failures.append(case.fail(("expect", "errors"), "errors", "a valid state",
                                             f"{e['file']}:{e['line']}: {e['message']}"))
        return not errors
    for j, w in enumerate(wanted):
        result.checks += 1
        hit = any(w["message"] in p["message"]
                  and ("file" not in w or _rel_file(p["file"], shown_root)
                       == os.path.normpath(w["file"]))
                  and ("line" not in w or p["line"] == w["line"]) for p in errors)
        if not hit:
            got = "; ".join(f"{_rel_file(p['file'], shown_root)}:{p['line']}: {p['message']}"
                            for p in errors[:3]) or "no errors"
            result.failures.append(case.fail(("expect", "errors", j), "errors",
                                             json.dumps(w, sort_keys=True), got))
    return not errors


def run_case(root: Path, case: Case, live: bool = False) -> CaseResult:
    from reconciler.engine import load, plan_env
    result = CaseResult(case)
    shown_root = display_path(Path.cwd(), root.resolve())
    wants_plan = any(k in case.expect for k in ("dags", "conflicts", "summary"))
    with _work_root(root, case) as (work, scratch):
        valid = True
        if "errors" in case.expect:
            valid = _check_errors(case, result, work, shown_root)
        if not wants_plan or not valid:
            return result
        try:
            ctx = load(work, case.environment, case.at)
            with _backend(ctx, case, live, scratch) as backend:
                plan, resolution, live_dags = plan_env(ctx, backend, at=case.at)
        except PausectlError as e:
            if e.file == case.doc.path:
                raise                 # the test file itself is wrong: bad input, not a failure
            result.checks += 1
            result.failures.append(case.fail((), "state", "the state loads and plans",
                                             f"error: {e}"))
            return result
        _check_dags(case, result, plan, resolution, live_dags, shown_root)
        _check_plan(case, result, plan)
    return result


def run_tests(root: Path, paths: list[str] | None = None, live: bool = False) -> list[CaseResult]:
    """Every case of every test file (all files are read first: a bad one fails the run
    before any case runs)."""
    cases = [c for f in test_files(root, paths) for c in load_cases(f)]
    return [run_case(root, c, live) for c in cases]
