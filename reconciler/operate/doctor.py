"""`pausectl doctor ENV DAG_ID`: why isn't my DAG running?

Every check looks at live Airflow (through the environment's backend) and at git (the rules,
through the resolver), and yields findings, most decisive first:

    not in Airflow, stale file, emergency pause, paused (by which rule, or by which live change,
    from Airflow's audit log), a window that is closed, import errors, end_date passed,
    start_date in the future, no schedule, max_active_runs reached, tasks waiting in queue,
    last runs failed; and for information: catchup off, asset-triggered, the next run.

A finding is `{code, severity, title, evidence: [..], fix}`; severity `blocking` (no new runs
until it is fixed), `warning` (runs are delayed or failing) or `info`. The verdict is the title
of the first finding, so the answer comes first and the evidence after it.

Checks that need more than the Backend protocol use optional backend methods when present:
`dag_details(dag_id)`, `import_errors(dag_id)`, `task_instances(dag_id, states)` (the
dagmodel backend has them; the REST API gets them through `backends/api_extras.py`).
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from reconciler.live.base import AuditEvent, LiveDag
from reconciler.engine import Context, read_emergency
from reconciler.policy.resolve import Emergency, Resolver
from reconciler.core.timeutil import iso, parse_timestamp, window_intervals

SEVERITIES = ("blocking", "warning", "info")
RUN_STATES_WAITING = ("queued", "scheduled")


@dataclass
class Finding:
    code: str
    severity: str
    title: str
    evidence: list[str] = field(default_factory=list)
    fix: str | None = None


def _state(paused) -> str:
    return {True: "paused", False: "running", None: "undecided"}[paused]


def _ts(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return parse_timestamp(str(value))
    except ValueError:
        return None


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "at an unknown time"
    secs = int((now - then).total_seconds())
    if secs < 0:
        return f"at {iso(then)}"
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n:
            return f"{secs // n}{unit} ago ({iso(then)})"
    return f"{secs}s ago ({iso(then)})"


def _rule_text(rule) -> str:
    parts = [f"{rule.label()} ({rule.where})"]
    if rule.reason:
        parts.append(f"reason {rule.reason!r}")
    if rule.owner:
        parts.append(f"owner {rule.owner}")
    if rule.ticket:
        parts.append(f"ticket {rule.ticket}")
    if rule.until:
        parts.append(f"until {iso(rule.until)}")
    return ", ".join(parts)


def _windows(rule, at: datetime) -> tuple[tuple[datetime, datetime] | None,
                                           tuple[datetime, datetime] | None]:
    """(the window of `rule` open at `at`, the next one to open after `at`)."""
    current = nxt = None
    for w in rule.windows:
        for start, end in window_intervals(w.cron, w.duration, w.timezone, at,
                                           at + timedelta(days=400), limit=3):
            if start <= at < end:
                if current is None or end > current[1]:
                    current = (start, end)
            elif start > at and (nxt is None or start < nxt[0]):
                nxt = (start, end)
                break
    return current, nxt


def _capability(backend, name: str):
    fn = getattr(backend, name, None)
    if fn is None:
        from reconciler.live.api_extras import extras_for
        extras = extras_for(backend)
        fn = getattr(extras, name, None) if extras is not None else None
    return fn


class Doctor:
    def __init__(self, ctx: Context, backend, at: datetime):
        self.ctx, self.backend, self.at = ctx, backend, at
        self.findings: list[Finding] = []
        self.notes: list[str] = []           # checks that could not run, and why
        self.details: dict | None = None

    def add(self, code, severity, title, evidence=(), fix=None) -> None:
        self.findings.append(Finding(code, severity, title, list(evidence), fix))

    # ------------------------------------------------------------------ entry
    def run(self, dag_id: str) -> dict:
        ctx, backend, at = self.ctx, self.backend, self.at
        live = backend.list_dags()
        dag = next((d for d in live if d.dag_id == dag_id), None)
        emergency = read_emergency(backend, ctx.env)
        if dag is None:
            self._missing(dag_id, live)
            return self._result(dag_id, None, None, emergency)
        resolver = Resolver(ctx.cfg, ctx.state, at, emergency)
        dec = resolver.decide(dag)
        details = self.details = self._details(dag_id)
        runs = self._runs(dag_id)
        events = self._events(dag_id) if (dag.is_paused or dec.paused) else []

        if dag.is_stale and not dag.has_import_errors:
            self.add("stale", "blocking",
                     "its DAG file is gone (stale): Airflow no longer schedules it",
                     [f"fileloc: {dag.fileloc or '?'}",
                      f"last parsed: {dag.last_parsed_time or 'never'}"],
                     "deploy the file again, or delete the DAG in Airflow if it was retired")
        self._import_errors(dag)
        self._paused(dag, dec, resolver, emergency, events, details, runs)
        self._window(dag, dec, resolver)
        if details is not None:
            self._dates(dag, details)
        if details is not None:
            self._schedule(dag, details, runs)
            self._capacity(dag, details, runs)
        self._queued(dag)
        self._failures(dag, runs, details)
        self._info(dag, details, runs)
        return self._result(dag_id, dag, dec, emergency, resolver)

    # ------------------------------------------------------------------ data
    def _details(self, dag_id: str) -> dict | None:
        fn = _capability(self.backend, "dag_details")
        if fn is None:
            self.notes.append("schedule, start_date, catchup, max_active_runs: the "
                              f"{_kind(self.backend)} backend has no DAG details")
            return None
        return fn(dag_id)

    def _runs(self, dag_id: str) -> list:
        try:
            return self.backend.dag_runs(dag_id, limit=25)
        except Exception as e:  # a backend that cannot read runs: say so, keep diagnosing
            self.notes.append(f"runs not checked: {e}")
            return []

    def _events(self, dag_id: str) -> list[AuditEvent]:
        try:
            return self.backend.audit_events([dag_id])
        except Exception as e:
            self.notes.append(f"audit log not read: {e}")
            return []

    # ------------------------------------------------------------------ checks
    def _missing(self, dag_id: str, live: list[LiveDag]) -> None:
        ev = []
        rules = self.ctx.state.dag_rules.get(dag_id)
        if rules:
            ev.append(f"git knows it: {', '.join(r.where for r in rules)}")
        close = difflib.get_close_matches(dag_id, [d.dag_id for d in live], n=3, cutoff=0.75)
        if close:
            ev.append(f"similar DAG ids in Airflow: {', '.join(close)}")
        ev.append(f"{len(live)} DAGs in {self.ctx.env}'s Airflow")
        self.add("not_in_airflow", "blocking",
                 f"{dag_id} is not in {self.ctx.env}'s Airflow", ev,
                 "check that its file is deployed to the DAGs folder and parses, and the dag_id")

    def _paused(self, dag, dec, resolver, emergency: Emergency | None, events, details,
                runs) -> None:
        from reconciler.plan.model import last_events
        last = last_events(events).get(dag.dag_id)
        rule = dec.rule
        env = self.ctx.env
        if not dag.is_paused:
            if dec.paused is True and rule is not None:
                self.add("will_pause", "warning",
                         f"running now, but git says paused: the next `pausectl apply {env}` "
                         f"pauses it", [f"decided by {_rule_text(rule)}"])
            return
        if emergency is not None and rule is not None and rule.layer == "emergency":
            self.add("emergency", "blocking",
                     f"EMERGENCY pause of {env} active since {emergency.started}: "
                     f"{emergency.reason} ({emergency.owner})",
                     [f"marker: {emergency.where}", "every DAG not excepted is held paused"],
                     f"when the incident is over: `pausectl emergency recover {env}`")
            return
        if dec.paused is True and rule is not None:
            ev = [f"decided by {_rule_text(rule)}", f"why: {resolver.why(dec, dag)}"]
            if rule.windows:
                current, _ = _windows(rule, self.at)
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
            self.add("paused_by_rule", "blocking", title, ev, fix)
            return
        # paused in Airflow, and git does not ask for it: a live change (or creation)
        if dec.paused is False:
            git = f"git says it should run ({_rule_text(rule) if rule else 'no rule'})"
        elif dec.conflict:
            git = "git is undecided: " + resolver.why(dec, dag)
        else:
            git = f"no rule in git manages it (defaults.unmanaged: " \
                  f"{self.ctx.state.defaults.unmanaged})"
        ev = [git]
        from reconciler.live.autopause import is_auto_pause
        if is_auto_pause(last):
            self._auto_pause(dag, dec, resolver, last, runs, git)
            return
        auto = self._auto_paused(runs, details)
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
            mode = self.ctx.cfg.drift_mode
            fix = (f"`pausectl apply {env}` unpauses it (drift.mode {mode})" if mode == "enforce"
                   else f"drift.mode is {mode}: unpause it in Airflow or add a rule in git")
        else:
            fix = "add a dag entry with `paused: false` in git and apply, or unpause it in Airflow"
        self.add("paused_live", "blocking", title, ev, fix)

    def _auto_pause(self, dag, dec, resolver, event, runs, git: str) -> None:
        """Airflow paused it by itself after failed runs: evidence, and what pausectl does."""
        from reconciler.live.autopause import AutoPause, examine, failed_before, outcome
        env, cfg = self.ctx.env, self.ctx.cfg
        rule = dec.rule
        if dec.paused is False:
            ap = examine(self.backend, dag.dag_id, event, rule, resolver.ended_rule, runs=runs)
        else:       # git does not want it running: nothing to hold or release
            ap = AutoPause(dag.dag_id, event, failed_before(runs, event.when))
        ev = [f"{r.run_id}: {r.state}" + (f", ended {_ago(r.end_date, self.at)}"
                                           if r.end_date else "") for r in ap.failed[:5]]
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
        self.add("auto_paused", "blocking", title, ev, fix)

    def _auto_paused(self, runs, details) -> int:
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

    def _window(self, dag, dec, resolver) -> None:
        """A rule that would let the DAG run, inactive because its window is closed."""
        for c in resolver.candidates(dag):
            r = c.rule
            if r.paused is False and r.windows and c.inactive and c.inactive.startswith("outside"):
                if not (dag.is_paused or dec.paused):
                    continue
                _, nxt = _windows(r, self.at)
                ws = "; ".join(f"{w.cron} for {w.duration} ({w.timezone})" for w in r.windows)
                ev = [f"{_rule_text(r)}", f"windows: {ws}"]
                title = f"outside its run window: {r.label()} lets it run only inside " \
                        f"its windows"
                if nxt:
                    title += f"; the next opens at {iso(nxt[0])}"
                    ev.append(f"next window: {iso(nxt[0])} .. {iso(nxt[1])}")
                self.add("window_closed", "blocking", title, ev,
                         "wait for the window, or widen it in git")
                return

    def _import_errors(self, dag) -> None:
        errors = []
        fn = _capability(self.backend, "import_errors")
        if fn is not None and (dag.has_import_errors or dag.is_stale):
            errors = fn(dag.dag_id)
        if not dag.has_import_errors and not errors:
            return
        ev = []
        for e in errors[:3]:
            lines = [ln for ln in (e.get("stacktrace") or "").strip().splitlines() if ln.strip()]
            ev.append(f"{e.get('filename')} at {e.get('timestamp')}: "
                      f"{lines[-1].strip() if lines else 'no stack trace'}")
        last = ev[0].split(": ", 1)[-1] if ev else "see Airflow's import errors"
        if dag.is_stale:    # AF3 marks the DAGs of a file that no longer imports stale
            self.add("import_errors", "blocking",
                     f"its DAG file fails to import, so Airflow no longer schedules it: {last}",
                     ev + [f"fileloc: {dag.fileloc or '?'} (marked stale)"],
                     "fix the file so Airflow can parse it again")
        else:
            self.add("import_errors", "warning", f"its DAG file fails to import: {last}", ev,
                     "fix the file; until then Airflow keeps the last version it parsed")

    def _dates(self, dag, details: dict) -> None:
        start, end = _ts(details.get("start_date")), _ts(details.get("end_date"))
        if start and start > self.at:
            self.add("start_date_future", "blocking",
                     f"start_date {iso(start)} is in the future: no run before it",
                     [f"start_date: {iso(start)}", f"schedule: {dag.timetable_summary}"],
                     "lower start_date in the DAG file if it should run now")
        if end and end <= self.at:
            self.add("end_date_passed", "blocking",
                     f"end_date {iso(end)} has passed: no new scheduled runs",
                     [f"end_date: {iso(end)}"], "raise or remove end_date in the DAG file")

    def _schedule(self, dag, details, runs) -> None:
        summary = dag.timetable_summary
        if summary is None and details is not None:
            summary = details.get("timetable_summary")
        if summary is None:
            ev = [f"timetable: {(details or {}).get('timetable_description') or 'None'}"]
            if runs:    # it has been triggered: what happened to those runs is the story
                ev.append(f"{len(runs)} triggered run(s) so far")
            self.add("no_schedule", "info" if runs else "blocking",
                     "it has no schedule (schedule=None): it runs only when triggered", ev,
                     "trigger it (UI, API, `airflow dags trigger`), or give it a schedule")
        elif summary.lower().startswith(("asset", "dataset")):
            self.add("asset_triggered", "info",
                     f"asset-triggered ({summary}): it runs when its upstream assets update",
                     [f"timetable: {summary}"])

    def _capacity(self, dag, details: dict, runs) -> None:
        limit = details.get("max_active_runs")
        running = details.get("running_runs")
        if running is None:
            running = sum(r.state == "running" for r in runs)
        queued = details.get("queued_runs")
        if queued is None:
            queued = sum(r.state == "queued" for r in runs)
        if limit and running >= limit:
            active = [r for r in runs if r.state == "running"]
            ev = [f"running: {r.run_id} since {_ago(r.start_date, self.at)}" for r in active[:5]]
            if queued:
                ev.append(f"{queued} queued run(s) wait for a free slot")
            self.add("max_active_runs", "blocking",
                     f"max_active_runs ({limit}) reached: {running} run(s) running, new runs "
                     "wait", ev, "let the running run finish (or mark it failed/success), or "
                                 "raise max_active_runs")

    def _queued(self, dag) -> None:
        fn = _capability(self.backend, "task_instances")
        if fn is None:
            return
        waiting = fn(dag.dag_id, RUN_STATES_WAITING)
        if not waiting:
            return
        ev = []
        for t in waiting[:8]:
            pool = t.get("pool")
            slots = t.get("pool_slots")
            where = f"pool {pool!r}" + (f" ({slots} slot(s))" if slots is not None else "")
            since = _ago(_ts(t.get("queued_when")), self.at) if t.get("queued_when") else ""
            ev.append(f"{t['task_id']} in {t['run_id']}: {t['state']} in {where}"
                      + (f", queued {since}" if since else ""))
        empty = sorted({t["pool"] for t in waiting if t.get("pool_slots") == 0})
        title = f"{len(waiting)} task(s) waiting to start (queued/scheduled)"
        if empty:
            title += f": pool {', '.join(repr(p) for p in empty)} has 0 slots"
        if dag.is_paused:
            ev.append("the DAG is paused: the scheduler does not start its queued tasks")
        self.add("queued_tasks", "warning", title, ev,
                 "check pool slots, [core] parallelism, max_active_tasks and that a "
                 "scheduler and executor are running")

    def _failures(self, dag, runs, details) -> None:
        finished = [r for r in runs if r.state in ("success", "failed")]
        if not finished or finished[0].state != "failed":
            return
        streak = 0
        for r in finished:
            if r.state != "failed":
                break
            streak += 1
        newest = finished[0]
        ev = [f"{r.run_id}: {r.state}, ended {_ago(r.end_date, self.at)}" for r in finished[:5]]
        self.add("last_runs_failed", "warning",
                 f"its last {streak} run(s) failed (latest {newest.run_id})", ev,
                 "read the failed task's log in Airflow; fix and clear the run")

    def _info(self, dag, details, runs) -> None:
        if details is not None and dag.timetable_summary is not None \
                and details.get("catchup") is False:
            self.add("catchup_off", "info",
                     "catchup is off: missed intervals are not run, only the latest one",
                     ["catchup: False"])
        if dag.next_dagrun_run_after:
            self.add("next_run", "info", f"next scheduled run after {dag.next_dagrun_run_after}",
                     [])
        if runs:
            r = runs[0]
            self.add("last_run", "info",
                     f"latest run {r.run_id}: {r.state}"
                     + (f", started {_ago(r.start_date, self.at)}" if r.start_date else ""), [])

    # ------------------------------------------------------------------ result
    def _result(self, dag_id, dag, dec, emergency, resolver=None) -> dict:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        self.findings.sort(key=lambda f: order[f.severity])    # stable: check order kept
        problems = [f for f in self.findings if f.severity != "info"]
        if problems:
            verdict = problems[0].title
        elif dag is not None:
            verdict = "nothing found that stops it: it is unpaused and schedulable"
        else:  # pragma: no cover
            verdict = "unknown"
        return {
            "environment": self.ctx.env, "dag_id": dag_id, "at": iso(self.at),
            "verdict": verdict,
            "blocked": any(f.severity == "blocking" for f in self.findings),
            "live": dag.to_json() if dag is not None else None,
            "details": self.details,
            "desired_paused": dec.paused if dec is not None else None,
            "decided_by": dec.rule.where if dec is not None and dec.rule else None,
            "emergency": ({"reason": emergency.reason, "owner": emergency.owner,
                           "started": emergency.started} if emergency else None),
            "findings": [asdict(f) for f in self.findings],
            "not_checked": self.notes,
        }


def _kind(backend) -> str:
    return {"SnapshotBackend": "snapshot", "AirflowApiBackend": "airflow-api",
            "DagModelBackend": "dagmodel"}.get(type(backend).__name__, type(backend).__name__)


def diagnose(ctx: Context, backend, dag_id: str, at: datetime) -> dict:
    return Doctor(ctx, backend, at).run(dag_id)


_MARK = {"blocking": "BLOCKING", "warning": "WARNING ", "info": "info    "}


def doctor_text(r: dict, stream=None) -> None:
    from reconciler.core.sanitize import line_writer      # data cannot add lines or commands
    w = line_writer(stream or sys.stdout)
    w(f"{r['dag_id']} in {r['environment']}: {r['verdict']}\n")
    live = r["live"]
    if live is not None:
        sched = (f"; schedule: {live['timetable_summary'] or 'None'}"
                 if r["details"] is not None else "")
        git = _state(r["desired_paused"]) if r["desired_paused"] is not None else "no rule decides"
        w(f"  live: {_state(live['is_paused'])}; git: {git}"
          f"{' (' + r['decided_by'] + ')' if r['decided_by'] else ''}{sched}\n")
    for f in r["findings"]:
        w(f"\n{_MARK[f['severity']]} {f['title']}\n")
        for e in f["evidence"]:
            w(f"           - {e}\n")
        if f["fix"]:
            w(f"           fix: {f['fix']}\n")
    for n in r["not_checked"]:
        w(f"\nnot checked: {n}\n")
