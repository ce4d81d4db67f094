"""doctor's git-side checks: is the DAG in Airflow, who or what holds it paused (a rule, the
emergency, a live change, Airflow's own auto-pause), a run window that is closed."""

from __future__ import annotations

import difflib

from reconciler.core.timeutil import iso
from reconciler.operate.doctor_findings import Findings, ago, rule_text, windows


def missing(f: Findings, dag_id: str, live) -> None:
    ev = []
    rules = f.ctx.state.dag_rules.get(dag_id)
    if rules:
        ev.append(f"git knows it: {', '.join(r.where for r in rules)}")
    close = difflib.get_close_matches(dag_id, [d.dag_id for d in live], n=3, cutoff=0.75)
    if close:
        ev.append(f"similar DAG ids in Airflow: {', '.join(close)}")
    ev.append(f"{len(live)} DAGs in {f.ctx.env}'s Airflow")
    f.add("not_in_airflow", "blocking", f"{dag_id} is not in {f.ctx.env}'s Airflow", ev,
          "check that its file is deployed to the DAGs folder and parses, and the dag_id")


def paused(f: Findings, dag, dec, res, obs, details, runs) -> None:
    """Why it is paused (or about to be): the first finding of most diagnoses."""
    last = obs.last_events().get(dag.dag_id)
    rule, env, emergency = dec.rule, f.ctx.env, obs.emergency
    hold = obs.holds.active.get(dag.dag_id) if obs.holds else None
    if hold is not None:          # `pausectl hold`: pausectl leaves it alone until it ends
        git = f"git says {'paused' if dec.paused else 'running'} ({rule_text(rule)})" \
            if rule is not None and dec.paused is not None else "no rule in git decides it"
        f.add("held", "blocking" if hold.paused else "warning", hold.describe(f.at),
              [f"Variable pausectl.holds.{env}: since {iso(hold.since)}, until "
               f"{iso(hold.until)}", git],
              f"it ends by itself at the first `pausectl apply {env}` after {iso(hold.until)}; "
              f"`pausectl hold {env} --release {dag.dag_id}` ends it now")
        return
    if not dag.is_paused:
        if dec.paused is True and rule is not None:
            f.add("will_pause", "warning",
                  f"running now, but git says paused: the next `pausectl apply {env}` "
                  f"pauses it", [f"decided by {rule_text(rule)}"])
        return
    if emergency is not None and rule is not None and rule.layer == "emergency":
        f.add("emergency", "blocking",
              f"EMERGENCY pause of {env} active since {emergency.started}: "
              f"{emergency.reason} ({emergency.owner})",
              [f"marker: {emergency.where}", "every DAG not excepted is held paused"],
              f"when the incident is over: `pausectl emergency recover {env}`")
        return
    if dec.paused is True and rule is not None:
        ev = [f"decided by {rule_text(rule)}", f"why: {res.why(dec, dag)}"]
        if rule.windows:
            current, _ = windows(rule, f.at)
            if current:
                ev.append(f"inside its window {iso(current[0])} .. {iso(current[1])}: "
                          f"runs again after {iso(current[1])}")
        if last is not None:
            ev.append(f"last live change: {last.describe()}")
        fix = (f"change or remove that rule in git, then `pausectl apply {env}`"
               + (f" (or wait until {iso(rule.until)})" if rule.until else ""))
        title = f"paused by {rule.label()} ({rule.where})"
        if rule.reason:
            title += f": {rule.reason!r}"
        if rule.owner:
            title += f", owner {rule.owner}"
        f.add("paused_by_rule", "blocking", title, ev, fix)
        return
    # paused in Airflow, and git does not ask for it: a live change (or creation)
    if dec.paused is False:
        git = f"git says it should run ({rule_text(rule) if rule else 'no rule'})"
    elif dec.conflict:
        git = "git is undecided: " + res.why(dec, dag)
    else:
        git = f"no rule in git manages it (defaults.unmanaged: " \
              f"{f.ctx.state.defaults.unmanaged})"
    from reconciler.live.autopause import is_auto_pause
    if is_auto_pause(last):
        auto_pause(f, dag, dec, last, obs.auto.get(dag.dag_id), runs, git)
        return
    _paused_live(f, dec, last, streak_paused(runs, details), details, git)


def _paused_live(f: Findings, dec, last, auto: int, details, git: str) -> None:
    ev = [git]
    env = f.ctx.env
    if last is not None and last.is_paused in (True, None):
        title = f"paused in Airflow by a live change: {last.describe()}"
        if last.via == "pausectl" and last.detail:
            ev.append(f"reason recorded: {last.detail!r}")
    elif auto:
        title = f"paused by Airflow itself after {auto} consecutive failed runs " \
                "(max_consecutive_failed_dag_runs)"
    else:
        title = "paused in Airflow with no pause event in its audit log"
        ev.append("likely paused since it was created ([core] dags_are_paused_at_creation "
                  "is True by default), or the audit log was cleaned")
    if auto and last is not None:
        ev.append(f"its last {auto} runs failed and max_consecutive_failed_dag_runs is "
                  f"{details.get('max_consecutive_failed_dag_runs')}")
    if dec.paused is False:
        mode = f.ctx.cfg.drift_mode
        fix = (f"`pausectl apply {env}` unpauses it (drift.mode {mode})" if mode == "enforce"
               else f"drift.mode is {mode}: unpause it in Airflow or add a rule in git")
    else:
        fix = "add a dag entry with `paused: false` in git and apply, or unpause it in Airflow"
    f.add("paused_live", "blocking", title, ev, fix)


def auto_pause(f: Findings, dag, dec, event, ap, runs, git: str) -> None:
    """Airflow paused it by itself after failed runs: evidence, and what pausectl does.
    `ap`: the observation's AutoPause (read when git wants the DAG running), else None."""
    from reconciler.live.autopause import AutoPause, failed_before, outcome
    env, cfg = f.ctx.env, f.ctx.cfg
    rule = dec.rule
    if ap is None:       # git does not want it running: nothing to hold or release
        ap = AutoPause(dag.dag_id, event, failed_before(runs, event.when))
    ev = [f"{r.run_id}: {r.state}" + (f", ended {ago(r.end_date, f.at)}" if r.end_date else "")
          for r in ap.failed[:5]]
    ev.append(f"event log: paused by {event.user or 'the scheduler'} at {iso(event.when)} "
              "(max_consecutive_failed_dag_runs)")
    ev.append(git)
    if dec.paused is not False:
        fix = "fix the failing task, then unpause it in Airflow"
        title = ap.summary()
    else:
        result = outcome(ap, cfg.auto_paused)
        if result == "held":
            ev.append(ap.hold_text(rule))
            title = f"{ap.summary()}; pausectl keeps it paused (drift.auto_paused: keep)"
            fix = ("fix the failing task, then unpause it in Airflow (or commit a change to "
                   f"{rule.label() if rule else 'its rule'}, or set drift.auto_paused: "
                   "enforce)")
        elif result == "enforced" and cfg.drift_mode != "enforce":
            title = f"{ap.summary()}; pausectl leaves it paused (drift.mode {cfg.drift_mode})"
            fix = "fix the failing task, then unpause it in Airflow"
            ev += ap.notes
        else:
            ev.append(ap.release_text())
            title = f"{ap.summary()}; the next `pausectl apply {env}` unpauses it"
            fix = f"fix the failing task before `pausectl apply {env}` unpauses it"
            ev += ap.notes
    f.add("auto_paused", "blocking", title, ev, fix)


def streak_paused(runs, details) -> int:
    """The failed runs in a row when they reach max_consecutive_failed_dag_runs, else 0."""
    limit = (details or {}).get("max_consecutive_failed_dag_runs") or 0
    if not limit:
        return 0
    streak = 0
    for r in runs:
        if r.state == "failed":
            streak += 1
        elif r.state == "success":
            break
    return streak if streak >= limit else 0


def window(f: Findings, dag, dec, res) -> None:
    """A rule that would let the DAG run, inactive because its window is closed."""
    for c in res.resolver.candidates(dag):
        r = c.rule
        if r.paused is False and r.windows and c.inactive and c.inactive.startswith("outside"):
            if not (dag.is_paused or dec.paused):
                continue
            _, nxt = windows(r, f.at)
            ws = "; ".join(f"{w.cron} for {w.duration} ({w.timezone})" for w in r.windows)
            ev = [f"{rule_text(r)}", f"windows: {ws}"]
            title = f"outside its run window: {r.label()} lets it run only inside its windows"
            if nxt:
                title += f"; the next opens at {iso(nxt[0])}"
                ev.append(f"next window: {iso(nxt[0])} .. {iso(nxt[1])}")
            f.add("window_closed", "blocking", title, ev,
                  "wait for the window, or widen it in git")
            return
