"""pausectl's testing kit for users' own pipelines (docs/testing.md), a supported API.

    from reconciler.testing import StateRepo, assert_paused, assert_running

    repo = StateRepo.build(tmp_path, {"pausectl.yaml": {...}, "prod.yaml": {...}},
                           dags={"prod": [{"dag_id": "etl_orders", "tags": ["etl"]}]})
    repo.assert_paused("prod", "etl_orders", at="2026-12-06T02:30:00+01:00")
    assert_running("prod", "billing_daily", at="2026-12-06T02:30:00+01:00")   # ./state

The pytest plugin (plugin.py, registered through the `pytest11` entry point as `pausectl`)
gives the fixtures `pausectl_state` (a StateRepo factory in a temp dir), `pausectl_snapshot`
(a snapshot backend from dicts) and `pausectl_airflow` (a real local Airflow: the harness of
the `testkit` package, shipped in the wheel beside `reconciler`).

Every answer comes from the same stages as `pausectl plan` (engine.load, engine.plan_env), so
a test here agrees with what apply would do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import parse_timestamp, utcnow

__all__ = ["StateRepo", "Verdict", "assert_paused", "assert_running", "assert_state",
           "live_dag", "snapshot_backend", "verdict"]


def live_dag(dag_id: str, paused: bool = False, tags: Iterable[str] = (),
             owners: Iterable[str] = (), **extra) -> dict:
    """One DAG of a snapshot (the JSON a `snapshot` backend reads)."""
    return {"dag_id": dag_id, "is_paused": paused, "tags": list(tags), "owners": list(owners),
            "is_stale": False, "has_import_errors": False, **extra}


def _dag(d) -> dict:
    if isinstance(d, str):
        return live_dag(d)
    d = dict(d)
    if "paused" in d:
        d["is_paused"] = d.pop("paused")
    return live_dag(**d)


def snapshot_backend(path: Path, dags: Iterable, env: str = "test"):
    """A snapshot backend over `path`, written from DAG ids or dicts (`paused` or `is_paused`)."""
    from reconciler.live.snapshot import SnapshotBackend
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": env, "dags": [_dag(d) for d in dags]}, indent=1),
                    encoding="utf-8")
    return SnapshotBackend(env, path)


@dataclass(frozen=True)
class Verdict:
    """What the plan at `at` says about one DAG."""

    dag_id: str
    state: str                 # paused | running | held | skipped | draining | conflict | ...
    rule: str | None           # the deciding rule's file:line
    rule_name: str | None      # "group nightly-maintenance", "dag entry x"
    why: str | None


def _time(at) -> datetime:
    if at is None:
        return utcnow()
    if isinstance(at, datetime):
        return at if at.tzinfo else at.astimezone()
    return parse_timestamp(str(at))


def verdict(env: str, dag_id: str, at=None, state: str | os.PathLike | None = None,
            backend=None) -> Verdict:
    """The decision for `dag_id` in `env` at `at` (default now) from the state repo `state`
    (default $PAUSECTL_STATE or ./state), against `backend` (default the environment's)."""
    from reconciler.engine import load, open_backend, plan_env
    from reconciler.operate.statetest import dag_states
    when = _time(at)
    ctx = load(state or os.environ.get("PAUSECTL_STATE") or "state", env, when)
    own = backend is None
    backend = open_backend(ctx.cfg, env) if own else backend
    try:
        plan, resolution, live = plan_env(ctx, backend, at=when)
    finally:
        if own:
            backend.close()
    dec = resolution.decisions.get(dag_id)
    rule = dec.rule if dec is not None else None
    dag = next((d for d in live if d.dag_id == dag_id), None)
    why = resolution.why(dec, dag) if dec is not None and dag is not None else None
    return Verdict(dag_id, dag_states(plan, resolution).get(dag_id, "absent"),
                   rule.where if rule else None, rule.label() if rule else None, why)


def assert_state(expected: str, env: str, dag_id: str, at=None, state=None,
                 backend=None) -> Verdict:
    v = verdict(env, dag_id, at, state, backend)
    if v.state != expected:
        raise AssertionError(f"{dag_id} in {env} at {_time(at).isoformat()}: expected "
                             f"{expected}, got {v.state} (deciding rule: {v.rule_name} at "
                             f"{v.rule}: {v.why})")
    return v


def assert_paused(env: str, dag_id: str, at=None, state=None, backend=None) -> Verdict:
    """Fail unless git pauses `dag_id` in `env` at `at`; returns the Verdict."""
    return assert_state("paused", env, dag_id, at, state, backend)


def assert_running(env: str, dag_id: str, at=None, state=None, backend=None) -> Verdict:
    """Fail unless git keeps `dag_id` running in `env` at `at`; returns the Verdict."""
    return assert_state("running", env, dag_id, at, state, backend)


class StateRepo:
    """A state repo in a directory, built from dicts (written as YAML) or text."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def build(cls, base: Path, files: Mapping[str, object],
              dags: Mapping[str, Iterable] | None = None) -> StateRepo:
        """`files`: path -> dict (dumped as YAML) or str; `dags`: env -> DAGs of a snapshot
        `snapshots/<env>.json`, and environments without a backend in pausectl.yaml get it."""
        repo = cls(Path(base) / "state")
        repo.root.mkdir(parents=True, exist_ok=True)
        files = dict(files)
        cfg = files.get("pausectl.yaml")
        if isinstance(cfg, dict) and dags:
            envs = cfg.setdefault("environments", {})
            for env in dags:
                envs.setdefault(env, {}).setdefault(
                    "backend", {"type": "snapshot", "path": f"snapshots/{env}.json"})
        repo.write(files)
        for env, items in (dags or {}).items():
            repo.write({f"snapshots/{env}.json": json.dumps(
                {"environment": env, "dags": [_dag(d) for d in items]}, indent=1)})
        return repo

    def write(self, files: Mapping[str, object]) -> None:
        import yaml
        for rel, content in files.items():
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise PausectlError(f"{rel!r} is not a path inside the state repo")
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            text = content if isinstance(content, str) else yaml.safe_dump(
                content, sort_keys=False, default_flow_style=False)
            p.write_text(text, encoding="utf-8")

    def verdict(self, env: str, dag_id: str, at=None, backend=None) -> Verdict:
        return verdict(env, dag_id, at, self.root, backend)

    def assert_paused(self, env: str, dag_id: str, at=None, backend=None) -> Verdict:
        return assert_paused(env, dag_id, at, self.root, backend)

    def assert_running(self, env: str, dag_id: str, at=None, backend=None) -> Verdict:
        return assert_running(env, dag_id, at, self.root, backend)

    def plan(self, env: str, at=None, backend=None):
        """The Plan `pausectl plan ENV --at AT` makes (with the environment's backend)."""
        from reconciler.engine import load, open_backend, plan_env
        when = _time(at)
        ctx = load(self.root, env, when)
        own = backend is None
        backend = open_backend(ctx.cfg, env) if own else backend
        try:
            return plan_env(ctx, backend, at=when)[0]
        finally:
            if own:
                backend.close()

    def run_tests(self, live: bool = False):
        """`pausectl test` on this repo: the CaseResults of its tests/*.yaml."""
        from reconciler.operate.statetest import run_tests
        return run_tests(self.root, live=live)
