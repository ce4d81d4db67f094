"""pausectl inside Airflow: operators for DAG files (import them from `reconciler.airflow`).

`PauseReconcileOperator` runs `plan`, `drift` or `apply` for one environment of a state repo
(a local path, or a git URL cloned per run at `ref`), pushes the plan (and the drift report)
to XCom, and fails the task on drift (`fail_on`); `gate` re-checks the health gate of the
last apply (`pausectl apply --gate-only`) and fails the task when it fails. The work is done
by the same operations as the CLI's (reconciler/operations.py) and ends in the same publish
stage (operate/publish.py). For the environment that *is* this Airflow
(`local_env`, default env var PAUSECTL_LOCAL_ENV) it uses the `dagmodel` backend (Airflow's
ORM), every other environment its configured backend (e.g. `airflow-api`).

`PauseDagsOperator` pauses (or unpauses) DAGs of this Airflow, the running DAG itself by
default, and records why: the reason goes to Airflow's audit log (`pausectl.pause` events,
owner `airflow-task:<dag>.<task>`), to XCom and to the task log. pausectl's `drift` then
attributes that pause to the operator, like any other live change.

Works on Airflow 3 (airflow.sdk) and Airflow 2. Airflow 3 blocks the metadata DB inside tasks
run by an executor: there, `dagmodel` needs `sql_alchemy_conn_env` (see live/dagmodel.py),
or use `backend={"type": "airflow-api", ...}` for this Airflow's own API server.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

try:                                    # Airflow 3
    from airflow.sdk import BaseOperator
except ImportError:                     # Airflow 2
    from airflow.models.baseoperator import BaseOperator
from airflow.exceptions import AirflowException

MODES = ("plan", "drift", "apply", "gate")
FAIL_ON = ("drift", "changes", "never")
_GIT_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.I)


def is_git_url(state: str) -> bool:
    return bool(_GIT_URL.match(state))


@contextlib.contextmanager
def state_checkout(state: str, ref: str | None = None,
                   subdir: str | None = None) -> Iterator[Path]:
    """The state repo directory: `state` itself, a git ref of it (materialised read-only), or a
    shallow clone of a git URL at `ref` (the repo's `state/` dir when it has one)."""
    if not is_git_url(state):
        if not ref:
            yield Path(state)
            return
        from reconciler.state.gitref import desired_state
        with desired_state(state, ref) as (root, _):
            yield Path(root)
        return
    tmp = tempfile.mkdtemp(prefix="pausectl-state-")
    try:
        cmd = ["git", "clone", "--quiet", "--depth", "1"]
        if ref:
            cmd += ["--branch", ref]
        cmd += ["--", state, tmp]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        if out.returncode != 0:
            from reconciler.core.errors import PausectlError
            shown = re.sub(r"//[^/@]*@", "//***@", state)     # never log credentials in URLs
            raise PausectlError(f"git clone of {shown}"
                                f"{' at ' + ref if ref else ''} failed: "
                                f"{(out.stderr or out.stdout).strip().splitlines()[-1:]}")
        root = Path(tmp)
        if subdir:
            root = root / subdir
        elif (root / "state" / "pausectl.yaml").is_file():
            root = root / "state"
        yield root
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def list_environments(state: str, ref: str | None = None, subdir: str | None = None,
                      only: Sequence[str] | str | None = None) -> list[str]:
    """Environment names of a state repo (for `.expand(env=...)`), optionally only these
    (a list, or a comma-separated string such as env var PAUSECTL_ENVIRONMENTS)."""
    from reconciler.state.loader import load_config
    with state_checkout(state, ref, subdir) as root:
        names = sorted(load_config(root).environments)
    if isinstance(only, str):
        only = [x.strip() for x in only.split(",") if x.strip()]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise AirflowException(f"unknown environment(s) {unknown}; the state repo has {names}")
        names = [n for n in names if n in set(only)]
    return names


def _backend_for(ctx, env: str, local_env: str | None, override: Mapping | None, log=None):
    """The backend for `env`: `override`; for the local environment Airflow's own ORM when this
    process may use it (not in Airflow 3 executor tasks: then the configured backend, e.g. the
    airflow-api of this Airflow); else the configured one."""
    from reconciler.engine import open_backend
    if override:
        ctx.cfg.environments[env].backend = dict(override)
    elif local_env and env == local_env:
        spec = dict(ctx.cfg.environments[env].backend)
        if spec.get("type") != "dagmodel":
            from reconciler.live.dagmodel import DagModelBackend
            local = DagModelBackend(env, {})
            if local.orm_available():
                return local
            if log is not None:
                log(f"{env}: Airflow blocks its metadata DB in this task; using the configured "
                    f"{spec.get('type')} backend instead of dagmodel")
    return open_backend(ctx.cfg, env)


class PauseReconcileOperator(BaseOperator):
    """plan / drift / apply one environment of a pausectl state repo.

    :param env: the environment (templated; map over it with `.expand(env=...)`)
    :param state: state repo path, or a git URL (https://, ssh://, file://, git@host:repo)
    :param ref: git ref (branch/tag; a commit for a local path)
    :param mode: plan | drift | apply | gate (the health gate of the last apply, now)
    :param fail_on: drift (a live change not in git: default for mode drift), changes (any
        difference between git and live), never (default for plan and apply)
    :param local_env: the environment that is this Airflow: use the dagmodel backend for it
        (default: env var PAUSECTL_LOCAL_ENV)
    :param backend: a backend mapping to use instead of the configured one
    :param state_subdir: the state repo inside a cloned git repo (default: `state/` if present)
    :param batches, allow_mass_change, gates: apply options (as `pausectl apply`)
    :param allow_catchup: apply unpauses creating more catch-up runs than
        safety.max_catchup_runs, or whose runs the impact preview could not count (default
        False: such an apply is refused before any change, as `pausectl apply` without
        --allow-catchup)
    :param mirror_journal: apply also keeps its journal in an Airflow Variable (default: a
        worker's disk may be gone when you need `pausectl rollback`)
    :param metrics_file: write Prometheus metrics here (textfile collector)
    :param notify: send the state repo's `notify:` webhooks (drift, apply, gate failures)
    """

    template_fields: Sequence[str] = ("env", "state", "ref", "mode", "local_env", "metrics_file")
    ui_color = "#e8f1fb"

    def __init__(self, *, env: str, state: str | None = None, ref: str | None = None,
                 mode: str = "drift", fail_on: str | None = None, local_env: str | None = None,
                 backend: Mapping[str, Any] | None = None, state_subdir: str | None = None,
                 batches: str | None = None, allow_mass_change: bool = False,
                 gates: bool = True, metrics_file: str | None = None, notify: bool = True,
                 mirror_journal: bool = True, allow_catchup: bool = False, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        fail_on = fail_on or ("drift" if mode == "drift" else "never")
        if fail_on not in FAIL_ON:
            raise ValueError(f"fail_on must be one of {FAIL_ON}, not {fail_on!r}")
        self.env = env
        self.state = state or os.environ.get("PAUSECTL_STATE_REPO") or "state"
        self.ref = ref
        self.mode = mode
        self.fail_on = fail_on
        self.local_env = local_env if local_env is not None else os.environ.get(
            "PAUSECTL_LOCAL_ENV")
        self.backend = dict(backend) if backend else None
        self.state_subdir = state_subdir
        self.batches = batches
        self.allow_mass_change = allow_mass_change
        self.allow_catchup = allow_catchup
        self.gates = gates
        self.metrics_file = metrics_file
        self.notify = notify
        self.mirror_journal = mirror_journal

    def execute(self, context):
        from reconciler import operations as ops
        from reconciler.core.errors import PausectlError
        from reconciler.engine import load
        from reconciler.operate.publish import publish
        ti = context.get("ti") or context.get("task_instance")
        try:
            with state_checkout(self.state, self.ref, self.state_subdir) as root:
                ctx = load(root, self.env)
                backend = _backend_for(ctx, self.env, self.local_env, self.backend,
                                       self.log.warning)
                try:
                    if self.mode == "gate":
                        return self._pausectl_gate(ctx, backend, ti)
                    # the same operations as `pausectl drift` and `pausectl apply`
                    outcome = ops.drift_env(ctx, backend)
                    plan, report = outcome.plan, outcome.report
                    result: dict[str, Any] = {"environment": self.env, "mode": self.mode,
                                              "plan": plan.to_json(), "drift": report}
                    if self.mode == "apply" and plan.changes:
                        applied = ops.apply_env(ctx, backend, self._pausectl_options())
                        outcome.result, outcome.seconds = applied.result, applied.seconds
                        result["apply"] = _apply_json(applied.result)
                finally:
                    backend.close()
                for w in publish(ctx.cfg, self.mode, [outcome], metrics_file=self.metrics_file,
                                 notify=self.notify,
                                 render=lambda: self._pausectl_log(plan, report, result)):
                    self.log.warning("%s", w)
        except PausectlError as e:
            raise AirflowException(f"pausectl {self.mode} {self.env}: {e}") from None
        if ti is not None:
            ti.xcom_push(key="plan", value=result["plan"])
            ti.xcom_push(key="drift", value=report)
        failure = self._pausectl_failure(plan, report, result)
        if failure:
            raise AirflowException(failure)
        return result

    def _pausectl_gate(self, ctx, backend, ti) -> dict:
        """`pausectl apply --gate-only`: the last apply's journal (local, else its mirror)."""
        from reconciler.apply.journal import Journal
        from reconciler.operations import gate_only
        journal = Journal.latest(self.env, backend)
        gate, unpaused = gate_only(ctx, backend, journal, self._pausectl_options())
        self.log.info("gate of %s: %s (%s) for %d DAG(s)", journal.path,
                      "passed" if gate["passed"] else "FAILED", gate["message"], len(unpaused))
        result = {"environment": self.env, "mode": self.mode, "gate": gate,
                  "journal": str(journal.path), "journal_status": str(journal.status)}
        if ti is not None:
            ti.xcom_push(key="gate", value=gate)
        if not gate["passed"]:
            raise AirflowException(f"pausectl gate {self.env}: {gate['message']} "
                                   f"(journal {journal.path})")
        return result

    def _pausectl_options(self):
        from reconciler.apply.executor import ApplyOptions
        from reconciler.plan.rollout import parse_batches
        return ApplyOptions(batches=parse_batches(self.batches) if self.batches else None,
                            allow_mass_change=self.allow_mass_change, gates=self.gates,
                            allow_catchup=self.allow_catchup,
                            mirror_journal=self.mirror_journal, log=self.log.info)

    def _pausectl_log(self, plan, report, result) -> None:
        s = plan.summary()
        self.log.info("pausectl %s %s: %d to pause, %d to unpause, %d unchanged, %d drifted by "
                      "hand", self.mode, self.env, s["pause"], s["unpause"], s["unchanged"],
                      len(report["drifted"]))
        for x in report["drifted"]:
            self.log.warning("drift: %s is %s, git says %s (%s); %s", x["dag_id"],
                             "paused" if x["live_paused"] else "running",
                             "paused" if x["desired_paused"] else "running", x["rule"],
                             x["description"])
        for c in plan.changes:
            self.log.info("%s %s (%s): %s", c.action, c.dag_id, c.rule, c.reason or "")
        if "apply" in result:
            self.log.info("apply: %s, %s DAG(s) changed", result["apply"]["status"],
                          result["apply"]["changed"])

    def _pausectl_failure(self, plan, report, result) -> str | None:
        if "apply" in result and result["apply"]["status"] not in ("done", "nothing"):
            return (f"pausectl apply {self.env}: {result['apply']['status']} "
                    f"({len(result['apply']['errors'])} error(s)); journal "
                    f"{result['apply']['journal']}")
        if plan.conflicts:
            return f"{self.env}: {len(plan.conflicts)} rule conflict(s) in git (tie: error)"
        if self.fail_on == "drift" and report["drifted"]:
            names = ", ".join(f"{x['dag_id']} ({x['description']})"
                              for x in report["drifted"][:10])
            return f"{self.env}: {len(report['drifted'])} DAG(s) drifted from git: {names}"
        if self.fail_on == "changes" and plan.changes and "apply" not in result:
            return (f"{self.env}: live differs from git for {len(plan.changes)} DAG(s): "
                    + ", ".join(c.dag_id for c in plan.changes[:10]))
        return None


def _apply_json(res) -> dict:
    """An ApplyResult for XCom: plain JSON values only."""
    return {"status": str(res.status), "changed": res.changed, "errors": dict(res.errors),
            "gates": res.gates, "journal": str(res.journal.path) if res.journal else None}


class PauseDagsOperator(BaseOperator):
    """Pause (or unpause) DAGs of this Airflow with a recorded reason.

    :param dag_ids: DAG ids (templated); default: the DAG this task runs in (a self-pause:
        the current run finishes, no new run starts)
    :param paused: True to pause, False to unpause
    :param reason: why (required; recorded in Airflow's audit log, XCom and the task log)
    :param ticket: optional ticket/incident id, recorded with the reason
    :param backend: a pausectl backend mapping (default: {"type": "dagmodel"})
    :param missing_ok: do not fail when a DAG does not exist
    """

    template_fields: Sequence[str] = ("dag_ids", "reason", "ticket")
    ui_color = "#fbe8e8"

    def __init__(self, *, reason: str, dag_ids: Sequence[str] | str | None = None,
                 paused: bool = True, ticket: str | None = None,
                 backend: Mapping[str, Any] | None = None, missing_ok: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not reason or not str(reason).strip():
            raise ValueError("PauseDagsOperator needs a reason")
        self.dag_ids = dag_ids
        self.paused = paused
        self.reason = reason
        self.ticket = ticket
        self.backend = dict(backend) if backend else {"type": "dagmodel"}
        self.missing_ok = missing_ok

    def _pausectl_targets(self, context) -> list[str]:
        ids = self.dag_ids
        if ids is None:
            return [context["dag"].dag_id if context.get("dag") is not None
                    else context["ti"].dag_id]
        if isinstance(ids, str):
            ids = [x.strip() for x in ids.split(",") if x.strip()]
        return list(dict.fromkeys(ids))

    def execute(self, context):
        from reconciler.core.timeutil import iso, utcnow
        ti = context.get("ti") or context.get("task_instance")
        dag_id = ti.dag_id if ti is not None else "?"
        who = f"airflow-task:{dag_id}.{self.task_id}"
        targets = self._pausectl_targets(context)
        reason = self.reason + (f" [{self.ticket}]" if self.ticket else "")
        spec = self.backend
        if spec.get("type") == "dagmodel":
            from reconciler.live.dagmodel import DagModelBackend
            backend = DagModelBackend("local", spec, user=who)
            extra = {"task": f"{dag_id}.{self.task_id}",
                     "run_id": getattr(ti, "run_id", None)}
            if self.ticket:
                extra["ticket"] = self.ticket
            call = lambda: backend.set_paused(targets, self.paused, reason=reason,  # noqa: E731
                                              source="PauseDagsOperator", extra=extra)
        else:
            from reconciler.live.airflow_api import AirflowApiBackend
            backend = AirflowApiBackend("local", spec)
            call = lambda: backend.set_paused(targets, self.paused)  # noqa: E731
        try:
            res = call()
        finally:
            backend.close()
        action = "paused" if self.paused else "unpaused"
        for d in res.changed:
            self.log.info("%s %s: %s (by %s)", action, d, reason, who)
        record = {"dag_ids": sorted(res.changed), "paused": self.paused, "reason": self.reason,
                  "ticket": self.ticket, "by": who, "at": iso(utcnow()), "errors": res.errors}
        if res.errors and not (self.missing_ok and all("not found" in e
                                                       for e in res.errors.values())):
            raise AirflowException(f"could not set paused={self.paused} for "
                                   f"{sorted(res.errors)}: {json.dumps(res.errors)}")
        return record


__all__ = ["PauseReconcileOperator", "PauseDagsOperator", "list_environments",
           "state_checkout", "is_git_url"]
