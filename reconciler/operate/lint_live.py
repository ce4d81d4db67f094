"""lint rules about live Airflow: unknown-live-pause, auto-paused, delete-candidate,
pause-after-failure (run history and the audit log; snapshots have neither), renewed-hold
(the holds Variable of `pausectl hold`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.core.timeutil import iso
from reconciler.operate.lint_config import Lint, split_where
from reconciler.operate.lint_git import permanent


def unknown_live_pause(lint: Lint) -> None:
    if lint.state.defaults.unmanaged != "report":
        return
    for d in lint.live:
        if d.is_paused and not d.is_stale and lint.res.decisions[d.dag_id].unmanaged:
            lint.add("unknown-live-pause", f"{d.dag_id} is paused in {lint.state.name} but no "
                                           "rule in git knows it", None, [d.dag_id])


def auto_paused(lint: Lint) -> None:
    """Airflow stopped these after failed runs (the newest event is its own)."""
    st, res, backend = lint.st, lint.res, lint.backend
    if not st.enabled("auto-paused", None) and not any(
            st.enabled("auto-paused", f) for f in st.per_file):
        return
    paused = [d.dag_id for d in lint.live if d.is_paused and not d.is_stale]
    if not paused:
        return
    from reconciler.live.autopause import (AutoPause, RuleHistory, examine, failed_before,
                                           is_auto_pause, outcome)
    from reconciler.plan.model import last_events
    last = last_events(lint.audit_events(paused))
    history = RuleHistory()
    for dag_id in paused:
        ev = last.get(dag_id)
        if not is_auto_pause(ev):
            continue
        dec = res.decisions[dag_id]
        rule = dec.rule
        if dec.paused is False:
            ap = examine(backend, dag_id, ev, rule, res.resolver.ended_rule, history=history)
            then = {"held": "pausectl holds it paused (drift.auto_paused: keep) until a human "
                            "acts",
                    "released": "its rule changed in git since: the next apply unpauses it",
                    "enforced": "drift.auto_paused is enforce: the next apply unpauses it"}[
                outcome(ap, lint.cfg.auto_paused)]
            git = f"git wants it running ({rule.label()}); {then}"
        else:
            ap = AutoPause(dag_id, ev, failed_before(backend.dag_runs(dag_id), ev.when))
            git = (f"git pauses it too ({rule.label()})" if dec.paused
                   else "no rule in git knows it")
        where = rule.where if rule is not None and rule.layer in ("dag", "group") else None
        lint.add("auto-paused", f"{dag_id} was {ap.summary()}; {git}", where, [dag_id])


def delete_candidate(lint: Lint) -> None:
    """Permanent pauses of DAGs that have not run for N days."""
    st, res = lint.st, lint.res
    no_runs = st.values["no_runs_days"]
    perm = sorted({d.dag_id for d in lint.live
                   if (dec := res.decisions[d.dag_id]).paused and dec.rule is not None
                   and dec.rule.layer in ("dag", "group") and permanent(dec.rule)
                   and dec.rule.origin is None})
    if not st.enabled("delete-candidate", None) and not any(
            st.enabled("delete-candidate", split_where(res.decisions[x].rule.where)[0])
            for x in perm):
        return
    if lint.offline:
        if perm:
            lint.result.skipped.append("delete-candidate: the snapshot backend has no run "
                                       "history")
        return
    cutoff = lint.at - timedelta(days=no_runs)
    for dag_id in perm:
        runs = lint.backend.dag_runs(dag_id, limit=1)
        last = None
        if runs:
            r0 = runs[0]
            last = r0.end_date or r0.start_date or r0.run_after
        if last is None or last < cutoff:
            rule = res.decisions[dag_id].rule
            when = f"since {iso(last)}" if last else "ever"
            lint.add("delete-candidate", f"{dag_id} is paused for good by {rule.label()} and "
                                         f"has not run {when} (over {no_runs} days)",
                     rule.where, [dag_id])


def pause_after_failure(lint: Lint) -> None:
    """Manual pauses that came right after a failed run."""
    window = timedelta(hours=lint.st.values["failure_window_hours"])
    if lint.offline:
        if any(d.is_paused for d in lint.live):
            lint.result.skipped.append("pause-after-failure: the snapshot backend has no audit "
                                       "log or run history")
        return
    for dag_id, ev in sorted(lint.last_pauses().items()):
        d = lint.by_id.get(dag_id)
        if d is None or not d.is_paused or ev.via in ("pausectl", "airflow"):  # see auto-paused
            continue
        failed = _failed_before(lint.backend.dag_runs(dag_id, limit=10), ev.when, window)
        if failed is not None:
            dec = lint.res.decisions[dag_id]
            where = dec.rule.where if dec.rule is not None and dec.rule.layer in (
                "dag", "group") else None
            lint.add("pause-after-failure",
                     f"{dag_id} was paused by {ev.user or 'unknown'} at {iso(ev.when)}, "
                     f"{_ago(ev.when - failed)} after a failed run", where, [dag_id])


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _failed_before(runs, when: datetime, window: timedelta) -> datetime | None:
    """When the last run that finished before `when` failed, within `window`: its end."""
    done = [r for r in runs if (r.end_date or r.start_date or r.run_after) is not None
            and (r.end_date or r.start_date or r.run_after) <= when]
    if not done:
        return None
    last = max(done, key=lambda r: r.end_date or r.start_date or r.run_after)
    t = last.end_date or last.start_date or last.run_after
    if last.state == "failed" and when - t <= window:
        return t
    return None


def renewed_hold(lint: Lint) -> None:
    """`pausectl hold`s renewed more than `max_hold_renewals` times: a pause in disguise."""
    if not lint.st.enabled("renewed-hold", None):
        return
    from reconciler.policy.holds import holds_key, read
    holds, _ = read(lint.backend, lint.state.name)     # its warnings are the plan's to show
    limit = lint.st.values["max_hold_renewals"]
    for dag_id, h in sorted(holds.items()):
        if h.renewals > limit and h.active(lint.at):
            lint.add("renewed-hold", f"{dag_id} is held {'paused' if h.paused else 'running'} "
                                     f"since {iso(h.since)}, renewed {h.renewals} times "
                                     f"(by {h.by}: {h.reason!r}); more than {limit}",
                     None, [dag_id])
