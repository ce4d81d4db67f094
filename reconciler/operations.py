"""The operations behind `pausectl apply / drift / restore / emergency recover` and the Airflow
operator, shared by both edges (cli/live.py, cli/emergency.py, airflow/operators.py): each
takes a loaded context and an open backend, and returns values; rendering, confirmation and
the publish stage (operate/publish.py) stay with the caller.

The rollout of a run is resolved once (`rollout_of`) and the plan is frozen with it, so the
batches a caller shows (`show(plan)`) are the batches that run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from reconciler.apply.executor import (ApplyOptions, ApplyResult, apply_plan, check_guards,
                                       resume, rollout_of)
from reconciler.apply.journal import Journal, check_journal_dir
from reconciler.core.errors import PausectlError
from reconciler.operate.publish import Outcome
from reconciler.plan.model import Plan
from reconciler.plan.records import ApplyStatus

Show = Callable[[Plan], None]


def _nothing(_plan: Plan) -> None:
    return None


@dataclass
class Applied:
    """An apply as it happened: the plan it ran (None for a resume) and its result."""

    plan: Plan | None
    resolution: object | None
    live: list | None
    result: ApplyResult
    seconds: float

    def outcome(self, env: str) -> Outcome:
        return Outcome(env, self.plan, self.live, self.resolution, result=self.result,
                       seconds=self.seconds)


def load_saved(path: str) -> Plan:
    """A plan file of `pausectl plan --out`, frozen with the batches it was shown with."""
    from reconciler.core.safejson import load_file
    try:
        return Plan.from_json(load_file(path, option="--plan", what="plan"))
    except FileNotFoundError:  # pragma: no cover (load_file says "not found")
        raise PausectlError("plan file not found", path) from None
    except (ValueError, KeyError, TypeError) as e:
        raise PausectlError(f"not a pausectl plan ({e})", path) from None


def compare_saved(saved: Plan, fresh: Plan) -> None:
    """Refuse a saved plan whose changes no longer match what a fresh plan would do."""
    if saved.environment != fresh.environment:
        raise PausectlError(f"plan file is for {saved.environment}, not {fresh.environment}")
    if saved.emergency != fresh.emergency:
        raise PausectlError("the emergency state changed since the plan was made (now: "
                            f"{fresh.emergency or 'none'}); run `pausectl plan` again")
    if saved.change_key() == fresh.change_key():
        return
    from deepdiff import DeepDiff
    diff = DeepDiff(dict(saved.change_key()), dict(fresh.change_key()), verbose_level=2)
    parts = []
    for kind, label in (("dictionary_item_added", "now also"), ("dictionary_item_removed",
                        "no longer"), ("values_changed", "changed")):
        items = diff.get(kind) or {}
        if items:
            keys = [k.split("['", 1)[-1].rstrip("']") for k in items]
            parts.append(f"{label}: {', '.join(sorted(keys)[:5])}"
                         + (" ..." if len(keys) > 5 else ""))
    raise PausectlError("live state changed since the plan was made (" + "; ".join(parts)
                        + "); run `pausectl plan` again")


def apply_env(ctx, backend, opts: ApplyOptions, saved: Plan | None = None,
              show: Show = _nothing, confirm: Show = _nothing, at: datetime | None = None,
              ready: Callable[[], None] | None = None) -> Applied:
    """Lock, plan under the lock with this run's rollout, then apply exactly that plan (or
    `saved`, once a fresh plan agrees with it: the saved value runs, with its batches).
    The controller plans a transition a moment ahead (`at`, default now) and `ready()` waits
    for its instant before anything changes: the lock and the listing are not its latency."""
    from reconciler.apply.lock import EnvLock
    from reconciler.core.killpoint import killpoint
    from reconciler.engine import plan_env
    if saved is not None and (opts.batches is not None
                              or opts.rollout_overrides.get("canary")):
        raise PausectlError("--batches/--canary cannot re-cut a saved plan (it carries the "
                            "batches it showed); plan again instead")
    check_journal_dir()       # the output rules, before the lock and any change
    rollout = rollout_of(ctx, opts)
    t0 = time.monotonic()
    # lock first, then plan under it: no other apply can move live state in between
    with EnvLock(backend, ctx.env, log=opts.log) as lock:
        killpoint("after_lock")
        plan, resolution, live = plan_env(ctx, backend, at=at, rollout=rollout)
        if ready is not None:
            ready()
        if saved is not None:
            compare_saved(saved, plan)
            plan = saved
        show(plan)
        if not plan.changes:
            expire_holds(ctx, backend, plan, opts.log)
            return Applied(plan, resolution, live, ApplyResult(ApplyStatus.NOTHING, None),
                           time.monotonic() - t0)
        check_guards(ctx, plan, opts)
        confirm(plan)
        result = apply_plan(ctx, backend, plan, opts, lock=lock)
        if result.status == ApplyStatus.DONE:
            expire_holds(ctx, backend, plan, opts.log)
    return Applied(plan, resolution, live, result, time.monotonic() - t0)


def expire_holds(ctx, backend, plan: Plan | None = None, log=lambda s: None) -> list:
    """End the holds whose time is up (`pausectl hold`), once git's state is back: call it
    under the environment lock after an apply of `plan` succeeded (apply_env does; so does a
    watch tick after its apply). Announces each (notify event `hold`); returns the records."""
    from reconciler.apply.holds_flow import expire, notify
    from reconciler.core.timeutil import parse_timestamp
    at = parse_timestamp(plan.at) if plan is not None else None
    outcome = expire(ctx, backend, at, locked=True)
    for h in outcome.records:
        log(f"hold on {h.dag_id} ended ({h.describe(at or h.until)}); git's state applies again")
    notify(ctx.cfg, outcome, at)
    return outcome.records


def resume_env(ctx, backend, journal: Journal, opts: ApplyOptions) -> Applied:
    """Continue the apply of `journal`: its journaled batches, nothing re-cut."""
    t0 = time.monotonic()
    result = resume(ctx, backend, journal, opts)
    return Applied(None, None, None, result, time.monotonic() - t0)


def gate_only(ctx, backend, journal: Journal, opts: ApplyOptions) -> tuple[dict, list[str]]:
    """Re-check, now and without waiting, the health of what the journal's apply unpaused;
    the check is kept in the journal. Returns (gate, the DAGs checked)."""
    from reconciler.apply.gates import evaluate, gate_settings
    from reconciler.core.timeutil import parse_timestamp
    from reconciler.plan.rollout import effective_rollout
    unpaused = sorted(d for d, v in journal.started_dags().items() if v["after"] is False)
    since = parse_timestamp(journal.data["started"])
    rollout = effective_rollout(journal.data.get("rollout") or rollout_of(ctx, opts),
                                opts.rollout_overrides)
    gate = evaluate(backend, unpaused, since, gate_settings(rollout), wait=False)
    journal.data.setdefault("gate_checks", []).append(gate)
    journal.save()
    return gate, unpaused


def drift_env(ctx, backend) -> Outcome:
    """One environment's drift report with the plan it came from."""
    from reconciler.operate.drift import drift_for
    report, plan, live, resolution = drift_for(ctx, backend)
    return Outcome(ctx.env, plan, live, resolution, report=report)


def restore_env(ctx, backend, opts: ApplyOptions, file, skip_missing: bool = False,
                from_env: str | None = None, show: Show = _nothing,
                confirm: Show = _nothing) -> tuple[Plan, ApplyResult | None]:
    """Put back an export: a plan frozen with this run's rollout, applied like any plan.
    Refused during an emergency. (plan, None) when nothing is to be restored."""
    from pathlib import Path

    from reconciler.apply.emergency import read_marker
    from reconciler.operate.export import restore_plan
    live = backend.list_dags()
    plan = restore_plan(ctx.env, Path(file), live, skip_missing=skip_missing,
                        from_env=from_env, rollout=rollout_of(ctx, opts))
    marker = read_marker(backend, ctx.env)
    if marker is not None and plan.changes:
        # a restore would unpause what the emergency holds: end the emergency first
        raise PausectlError(f"an emergency pause is active in {ctx.env} since "
                            f"{marker.get('started')}; `pausectl emergency recover {ctx.env}` "
                            "first, then restore")
    if not plan.changes:
        return plan, None
    show(plan)
    confirm(plan)
    return plan, apply_plan(ctx, backend, plan, opts)


def recover_env(ctx, backend, opts: ApplyOptions, show: Show = _nothing,
                confirm: Show = _nothing) -> tuple[Plan, ApplyResult | None]:
    """End the emergency: put back what it paused as a staged apply (its plan frozen with
    this run's rollout, `--batches` included: shown batches = run batches); the marker is
    deleted only when that apply succeeded. (plan, None) when nothing was left to do."""
    from reconciler.apply import emergency as em
    from reconciler.plan.records import ApplyKind
    data = em.read_marker(backend, ctx.env)
    if data is None:
        raise PausectlError(f"no emergency is active in {ctx.env} (no Variable "
                            f"{em.marker_key(ctx.env)})")
    live = backend.list_dags()
    plan = em.recover_plan(ctx.env, data, live, rollout_of(ctx, opts))
    show(plan)
    result = None
    if plan.changes:
        confirm(plan)
        opts.kind = ApplyKind.RECOVER
        opts.ignore_emergency = True        # this apply is the end of the emergency
        opts.allow_mass_change = True       # it restores a recorded state, whatever its size
        result = apply_plan(ctx, backend, plan, opts)
        if result.status != ApplyStatus.DONE:
            return plan, result
    em.end(backend, ctx.env, data)
    return plan, result
