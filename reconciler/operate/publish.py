"""The one publish stage every command ends in: notify, status, metrics, then render.

A command (CLI or the Airflow operator) collects one `Outcome` per environment it worked on
and hands them to `publish`: each outcome is announced to the `notify:` webhooks (apply,
gate failure, drift, auto-pause, emergency); an outcome that carries a `store` (the
environment's backend, a live.base.VariableStore), or any outcome of a live environment whose
pausectl.yaml entry says `status_variable: true` (or of every one when
PAUSECTL_STATUS_VARIABLE=1), gets its status document written to the Variable
`pausectl.status.<env>` (operate/status_doc.py; the Airflow plugin shows it); all of
them go into one metrics file, and the command's own `render` (terminal output, or the task
log) runs last. Notifications and
metrics never change what a command did, only what it reports: their failures come back as
warnings for the caller to show.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What one command did in one environment, as the publish stage needs it."""

    env: str
    plan: object | None = None         # the plan (None: a resumed apply)
    live: list | None = None
    resolution: object | None = None
    report: dict | None = None         # a drift report
    result: object | None = None       # an ApplyResult (status "nothing" when nothing ran)
    seconds: float = 0.0               # wall time of the apply
    emergency: dict | None = None      # {"action": pause|recover, reason, owner, count, detail}
    extra: dict = field(default_factory=dict)
    store: object | None = None        # where the status document goes (None: not written)
    events: dict | None = None         # newest pause event per DAG (Observation.last_events())


def notify_outcome(cfg, o: Outcome) -> list[str]:
    from reconciler.operate.notify import notify_apply, notify_drift, notify_emergency
    warnings: list[str] = []
    if o.report is not None:
        warnings += notify_drift(cfg, o.report)
    if o.result is not None:
        r = o.result
        warnings += notify_apply(cfg, o.env, o.plan, r.status, r.changed, r.gates, r.errors)
    if o.emergency is not None:
        fields = dict(o.emergency)
        warnings += notify_emergency(cfg, o.env, fields.pop("action"), **fields)
    return warnings


STATUS_SWITCH = "PAUSECTL_STATUS_VARIABLE"


def _status_store(cfg, o: Outcome):
    """(store, opened here): the outcome's own store, else - with PAUSECTL_STATUS_VARIABLE=1 -
    the environment's live backend (never a snapshot file: a plan must not rewrite it)."""
    if o.store is not None:
        return o.store, False
    env = cfg.env(o.env)
    if not env.status_variable and \
            os.environ.get(STATUS_SWITCH, "").lower() not in ("1", "true", "yes"):
        return None, False
    if (env.backend or {}).get("type") == "snapshot":
        return None, False
    from reconciler.engine import open_backend
    return open_backend(cfg, o.env), True


def _applied(o: Outcome) -> set[str] | None:
    """The DAGs a finished apply changed: its plan's changes less the failed ones (the
    outcome's `live` is what was read before the apply). A rolled back or halted apply: none."""
    r = o.result
    if r is None or o.plan is None or str(r.status) != "done":
        return None
    return {c.dag_id for c in o.plan.changes} - set(r.errors or {})


def publish_status(cfg, command: str, o: Outcome) -> list[str]:
    """Write the status document of one outcome to its store; a failure is a warning (the
    command did its work; only what Airflow's UI shows is late)."""
    if o.resolution is None or o.live is None:
        return []
    from reconciler.operate import status_doc
    store, opened = None, False
    try:
        store, opened = _status_store(cfg, o)
        if store is None:
            return []
        extra = o.extra.get("status_extra") if isinstance(o.extra, dict) else None
        doc = status_doc.build(o.env, command=command, live=o.live, resolution=o.resolution,
                               plan=o.plan, report=o.report, events=o.events, extra=extra,
                               desired_ref=getattr(o.plan, "desired_ref", None),
                               applied=_applied(o))
        status_doc.write(store, doc)
    except Exception as e:  # noqa: BLE001 - any store failure is reported, never raised
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        return [f"{o.env}: status document not written to {status_doc.variable_key(o.env)}: {why}"]
    finally:
        if opened:
            store.close()
    return []


def observe_outcome(m, o: Outcome) -> None:
    """Fill the metrics of one outcome (operate/metrics.py names the series)."""
    from reconciler.plan.records import ApplyStatus
    status = o.result.status if o.result is not None else None
    if o.plan is not None and o.live is not None:
        m.observe_plan(o.env, o.plan, o.live, o.resolution, applied=status == ApplyStatus.DONE)
    if o.report is not None:
        m.observe_drift(o.env, o.report)
    if o.result is not None:
        m.observe_apply(o.env, status, o.seconds, o.result.gates)


def publish(cfg, command: str, outcomes: Iterable[Outcome], *, metrics_file: str | None = None,
            notify: bool = True, render: Callable[[], None] | None = None) -> list[str]:
    """Notify each outcome (when `notify`), write `metrics_file` (when given) with all of
    them, then `render`. Returns the warnings, for the caller to show its way."""
    outcomes = list(outcomes)
    warnings: list[str] = []
    if notify:
        for o in outcomes:
            warnings += notify_outcome(cfg, o)
    for o in outcomes:
        warnings += publish_status(cfg, command, o)
    if metrics_file:
        from reconciler.operate.metrics import write_metrics
        warnings += write_metrics(metrics_file, command,
                                  lambda m: [observe_outcome(m, o) for o in outcomes])
    if render is not None:
        render()
    return warnings


def publish_cli(cfg, command: str, outcomes: Iterable[Outcome], *,
                metrics_file: str | None = None, render: Callable[[], None] | None = None,
                ) -> None:
    """`publish` for the CLI: warnings go to stderr as `warning: ...` lines."""
    from reconciler.operate.notify import warn
    warn(publish(cfg, command, outcomes, metrics_file=metrics_file, render=render))
