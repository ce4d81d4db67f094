"""In-memory fakes for apply and emergency tests without Airflow: a backend (DAGs, runs,
Variables), one with the BulkPauser capability, a context, and plans built by hand."""

from __future__ import annotations

from msgspec.structs import replace   # LiveDag is a msgspec Struct

import pytest

from reconciler.apply.executor import ApplyOptions
from reconciler.live.base import DagRun, LiveDag, SetPausedResult
from reconciler.plan.model import Change, Plan




class FakeBackend:
    """In-memory Airflow: DAGs, runs, Variables (create is atomic here)."""

    name = "fake"

    def __init__(self, dags: list[LiveDag]):
        self.dags = {d.dag_id: d for d in dags}
        self.vars: dict[str, str] = {}
        self.runs: dict[str, list[DagRun]] = {}
        self.calls: list[tuple[str, bool]] = []

    def list_dags(self):
        return list(self.dags.values())

    def set_paused(self, dag_ids, paused, progress=None):
        res = SetPausedResult()
        for d in dag_ids:
            if d not in self.dags:
                res.errors[d] = f"DAG {d} not found"
                continue
            self.dags[d] = replace(self.dags[d], is_paused=paused)
            self.calls.append((d, paused))
            res.changed.append(d)
            if progress:
                progress(1)
        return res

    def audit_events(self, dag_ids=None, since=None):
        return []

    def dag_runs(self, dag_id, limit=25):
        return self.runs.get(dag_id, [])

    def get_variable(self, key):
        return self.vars.get(key)

    def set_variable(self, key, value):
        self.vars[key] = value

    def create_variable(self, key, value):
        if key in self.vars:
            return False
        self.vars[key] = value
        return True

    def delete_variable(self, key):
        self.vars.pop(key, None)

    def close(self):
        pass

    def paused(self):
        return {d: v.is_paused for d, v in self.dags.items()}


class Ctx:
    def __init__(self, rollout, max_changes=None):
        class Cfg:
            pass
        self.cfg = Cfg()
        self.cfg.max_changes = max_changes
        self.cfg.rollout_for = lambda env: rollout
        self.env = "prod"


def plan_for(backend, desired: dict[str, bool]) -> Plan:
    p = Plan(environment="prod", generated_at="2026-01-01T00:00:00Z", at="2026-01-01T00:00:00Z",
             desired_ref=None)
    for d, want in sorted(desired.items()):
        live = backend.dags[d].is_paused
        if live != want:
            p.changes.append(Change(d, "pause" if want else "unpause", live, want, "f:1", "r", "o"))
    return p


def quiet(**kw) -> ApplyOptions:
    return ApplyOptions(log=lambda s: None, sleep=lambda s: None, **kw)


@pytest.fixture(autouse=True)
def journal_dir(tmp_path, monkeypatch):
    """Every journal of a test in its own directory (import this fixture into the module)."""
    monkeypatch.setenv("PAUSECTL_JOURNAL_DIR", str(tmp_path / "journal"))


def fleet() -> FakeBackend:
    dags = [LiveDag(f"d{i}", is_paused=True, tags=("canary",) if i in (5, 7) else (),
                    timetable_summary="@daily") for i in range(10)]
    dags += [LiveDag("run_a", False), LiveDag("run_b", False)]
    return FakeBackend(dags)


class FakeBulk(FakeBackend):
    """FakeBackend with the BulkPauser capability (the airflow-api backend's real bulk path
    is tested against real Airflow in tests/live/test_capabilities_live.py)."""

    def __init__(self, dags):
        super().__init__(dags)
        self.bulk_calls: list[tuple[list[str], set[str]]] = []

    def pause_except(self, live, targets, keep, progress=None):
        self.bulk_calls.append((list(targets), {d.dag_id for d in live if keep(d)}))
        res = self.set_paused(targets, True)
        res.warnings.append("a DAG appeared meanwhile")
        return res
