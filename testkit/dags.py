"""What a harness Airflow serves: `DagSpec` values, the standard and matrix DAG sets, and the
generated DAG file that builds Airflow DAG objects from a JSON list of specs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone

DEFAULT_START = "2024-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class DagSpec:
    """One generated DAG. Tasks: `fail` -> a task that raises; `sleep`/`outlets` -> a Python
    task (sleeps that many seconds, emits the assets); otherwise one EmptyOperator.

    `schedule`: None, a cron expression or preset ("@daily"), or a list of asset names (the
    DAG is then asset-triggered: AF3 `[Asset(name)]`, AF2 `[Dataset(name)]`).
    `import_error`: the DAG is registered, then its file is broken (has_import_errors, and an
    entry in importErrors). `stale`: registered, then its file is deleted (AF3 is_stale,
    AF2 is_active false). `paused_at_creation` None keeps Airflow's default (paused).
    """

    dag_id: str
    tags: tuple[str, ...] = ()
    owner: str = "airflow"
    schedule: str | tuple[str, ...] | None = None
    fail: bool = False
    sleep: float = 0.0
    import_error: bool = False
    stale: bool = False
    outlets: tuple[str, ...] = ()
    inlets: tuple[str, ...] = ()
    start_date: str = DEFAULT_START
    catchup: bool = False
    max_active_runs: int | None = None
    paused_at_creation: bool | None = None
    max_consecutive_failed_dag_runs: int | None = None   # Airflow's auto-pause (2.9+)
    # cross-DAG edges Airflow serialises (issue 15): an ExternalTaskSensor per DAG id waited
    # on (`sensor_timeout` seconds), a TriggerDagRunOperator per DAG id triggered
    sensors: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    sensor_timeout: int = 3600

    def __post_init__(self) -> None:
        ok = self.dag_id and all(c.isalnum() or c in "_-." for c in self.dag_id)
        if not ok or len(self.dag_id) > 250:
            raise ValueError(f"invalid dag_id {self.dag_id!r}")
        if self.import_error and self.stale:
            raise ValueError(f"{self.dag_id}: a DAG cannot be both stale and an import error")
        for name in ("tags", "outlets", "inlets", "sensors", "triggers"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.schedule, list):
            object.__setattr__(self, "schedule", tuple(self.schedule))
        if isinstance(self.start_date, datetime):
            start = self.start_date
            if start.tzinfo is None:
                start = start.replace(tzinfo=timezone.utc)
            object.__setattr__(self, "start_date", start.isoformat())

    @property
    def initially_paused(self) -> bool:
        return True if self.paused_at_creation is None else self.paused_at_creation

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        for name in ("tags", "outlets", "inlets", "sensors", "triggers"):
            data[name] = list(data[name])
        if isinstance(self.schedule, tuple):
            data["schedule"] = list(self.schedule)
        return data


def _standard_dags() -> tuple[DagSpec, ...]:
    """154 DAGs: 151 healthy, 2 import errors, 1 stale; all paused at creation."""
    crons = [None, "@daily", "0 * * * *", "30 2 * * *", "@hourly"]
    specs: list[DagSpec] = []
    for i in range(60):                     # etl_000..etl_059
        tags = ["etl"] + (["canary"] if i < 3 else []) + (["critical"] if i in (10, 11) else [])
        specs.append(DagSpec(f"etl_{i:03d}", tags=tuple(tags), owner="data-eng",
                             schedule=crons[i % len(crons)]))
    for i in range(45):                     # report_000..report_044
        tags = ["reporting"] + (["canary"] if i < 2 else [])
        owner = "analytics" if i % 9 else "data-eng"
        specs.append(DagSpec(f"report_{i:03d}", tags=tuple(tags), owner=owner,
                             schedule=crons[(i + 1) % len(crons)]))
    for i in range(30):                     # ml_000..ml_029
        tags = ["ml"] + (["etl"] if i % 5 == 0 else []) + (["canary"] if i == 0 else [])
        specs.append(DagSpec(f"ml_{i:03d}", tags=tuple(tags), owner="ml-team",
                             schedule=crons[(i + 2) % len(crons)]))
    for i in range(8):                      # critical_000..critical_007
        specs.append(DagSpec(f"critical_{i:03d}", tags=("critical", "etl"), owner="data-eng",
                             schedule="@daily"))
    specs += [
        DagSpec("etl_fails", tags=("etl",), owner="data-eng", fail=True),
        DagSpec("etl_untagged", owner="data-eng"),
        DagSpec("etl_assets_producer", tags=("etl",), owner="data-eng",
                outlets=("pausectl_orders",)),
        DagSpec("report_assets_consumer", tags=("reporting",), owner="analytics",
                schedule=("pausectl_orders",)),
        DagSpec("report_future", tags=("reporting",), owner="analytics", schedule="@daily",
                start_date="2030-01-01T00:00:00+00:00"),
        DagSpec("ml_limited", tags=("ml",), owner="ml-team", schedule="@daily",
                max_active_runs=1),
        DagSpec("critical_billing", tags=("critical",), owner="data-eng", schedule="@hourly"),
        # Airflow's own default owner, a tag used by no other DAG:
        DagSpec("misc_orphan", tags=("orphan",)),
        DagSpec("etl_broken_a", tags=("etl",), owner="data-eng", import_error=True),
        DagSpec("report_broken_b", tags=("reporting",), owner="analytics", import_error=True),
        DagSpec("ml_stale_old", tags=("ml",), owner="ml-team", stale=True),
    ]
    return tuple(specs)


STANDARD_DAGS: tuple[DagSpec, ...] = _standard_dags()


def make_dags(n: int, prefix_offset: int = 0) -> list[DagSpec]:
    """`n` healthy DAGs with the standard mix of prefixes, tags and owners (for benchmarks)."""
    kinds = [("etl", ("etl",), "data-eng"), ("report", ("reporting",), "analytics"),
             ("ml", ("ml",), "ml-team"), ("critical", ("critical", "etl"), "data-eng")]
    crons = [None, "@daily", "0 * * * *", "@hourly"]
    out = []
    for i in range(prefix_offset, prefix_offset + n):
        prefix, tags, owner = kinds[i % 10 % 4] if i % 10 < 8 else kinds[i % 2]
        if i % 50 == 0:
            tags = tags + ("canary",)
        out.append(DagSpec(f"{prefix}_b{i:05d}", tags=tags, owner=owner,
                           schedule=crons[i % len(crons)]))
    return out


# One per test module that auto-pauses one, so failed runs of one test never count in another's
# (a: test_capabilities_live, b: test_dagmodel, c: tests/compat).
AUTO_PAUSE_DAGS: tuple[DagSpec, ...] = tuple(
    DagSpec(f"etl_autopause_{c}", tags=("etl",), owner="data-eng", fail=True, schedule="@daily",
            max_consecutive_failed_dag_runs=3) for c in "abc")


def matrix_dags(n: int = 200) -> tuple[DagSpec, ...]:
    """What each version-matrix server holds: STANDARD_DAGS, `n` generated DAGs (more than
    three pages of 100 in all) and AUTO_PAUSE_DAGS (failing DAGs with
    max_consecutive_failed_dag_runs=3, for `AirflowServer.auto_pause`)."""
    return (*STANDARD_DAGS, *make_dags(n), *AUTO_PAUSE_DAGS)


_GENERATOR = '''\
# Generated by pausectl's test harness (testkit/harness.py): airflow DAG objects built
# from the JSON spec file next to this one. Do not edit.
import json
import os
import time
from datetime import datetime, timezone

{imports}

_SPEC_FILE = os.path.splitext(os.path.abspath(__file__))[0] + ".json"


def _fail(**_):
    raise RuntimeError("pausectl harness: this task fails on purpose")


def _work(seconds, **_):
    time.sleep(seconds)


def _when(text):
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _schedule(value):
    if isinstance(value, list):
        return [Asset(name) for name in value]
    return value


with open(_SPEC_FILE) as _fh:
    _SPECS = json.load(_fh)

for _s in _SPECS:
    _kwargs = dict(
        dag_id=_s["dag_id"], start_date=_when(_s["start_date"]),
        schedule=_schedule(_s["schedule"]), catchup=_s["catchup"], tags=_s["tags"],
        default_args={{"owner": _s["owner"], "retries": 0}},
    )
    if _s["max_active_runs"] is not None:
        _kwargs["max_active_runs"] = _s["max_active_runs"]
    if _s["paused_at_creation"] is not None:
        _kwargs["is_paused_upon_creation"] = _s["paused_at_creation"]
    if _s.get("max_consecutive_failed_dag_runs") is not None:
        _kwargs["max_consecutive_failed_dag_runs"] = _s["max_consecutive_failed_dag_runs"]
    with DAG(**_kwargs) as _dag:
        _outlets = [Asset(name) for name in _s["outlets"]]
        _inlets = [Asset(name) for name in _s["inlets"]]
        if _s["fail"]:
            PythonOperator(task_id="fail", python_callable=_fail, outlets=_outlets,
                           inlets=_inlets)
        elif _s["sleep"] or _outlets:
            PythonOperator(task_id="work", python_callable=_work, op_args=[_s["sleep"]],
                           outlets=_outlets, inlets=_inlets)
        else:
            EmptyOperator(task_id="noop", inlets=_inlets)
        for _up in _s.get("sensors") or ():
            ExternalTaskSensor(task_id=f"wait_{{_up}}", external_dag_id=_up,
                               external_task_id=None, timeout=_s["sensor_timeout"],
                               mode="reschedule")
        for _down in _s.get("triggers") or ():
            TriggerDagRunOperator(task_id=f"trigger_{{_down}}", trigger_dag_id=_down)
    globals()[_s["dag_id"]] = _dag
'''

_IMPORTS = {
    3: "from airflow.sdk import DAG, Asset\n"
       "from airflow.providers.standard.operators.empty import EmptyOperator\n"
       "from airflow.providers.standard.operators.python import PythonOperator\n"
       "from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator\n"
       "from airflow.providers.standard.sensors.external_task import ExternalTaskSensor",
    2: "from airflow import DAG\n"
       "from airflow.datasets import Dataset as Asset\n"
       "from airflow.operators.empty import EmptyOperator\n"
       "from airflow.operators.python import PythonOperator\n"
       "from airflow.operators.trigger_dagrun import TriggerDagRunOperator\n"
       "from airflow.sensors.external_task import ExternalTaskSensor",
}
_BREAK = ("\n# pausectl harness: this DAG file was broken on purpose\n"
          "import pausectl_missing_module  # noqa: F401\n")

