"""doctor's Airflow-side checks: the DAG file (stale, import errors), its dates and schedule,
its capacity (max_active_runs, queued tasks), its recent runs."""

from __future__ import annotations

from reconciler.core.timeutil import iso
from reconciler.operate.doctor_findings import Findings, ago, capability, ts

RUN_STATES_WAITING = ("queued", "scheduled")


def stale(f: Findings, dag) -> None:
    if dag.is_stale and not dag.has_import_errors:
        f.add("stale", "blocking", "its DAG file is gone (stale): Airflow no longer schedules it",
              [f"fileloc: {dag.fileloc or '?'}", f"last parsed: {dag.last_parsed_time or 'never'}"],
              "deploy the file again, or delete the DAG in Airflow if it was retired")


def import_errors(f: Findings, dag) -> None:
    errors = []
    fn = capability(f.backend, "import_errors")
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
        f.add("import_errors", "blocking",
              f"its DAG file fails to import, so Airflow no longer schedules it: {last}",
              ev + [f"fileloc: {dag.fileloc or '?'} (marked stale)"],
              "fix the file so Airflow can parse it again")
    else:
        f.add("import_errors", "warning", f"its DAG file fails to import: {last}", ev,
              "fix the file; until then Airflow keeps the last version it parsed")


def dates(f: Findings, dag, details: dict) -> None:
    start, end = ts(details.get("start_date")), ts(details.get("end_date"))
    if start and start > f.at:
        f.add("start_date_future", "blocking",
              f"start_date {iso(start)} is in the future: no run before it",
              [f"start_date: {iso(start)}", f"schedule: {dag.timetable_summary}"],
              "lower start_date in the DAG file if it should run now")
    if end and end <= f.at:
        f.add("end_date_passed", "blocking",
              f"end_date {iso(end)} has passed: no new scheduled runs",
              [f"end_date: {iso(end)}"], "raise or remove end_date in the DAG file")


def schedule(f: Findings, dag, details, runs) -> None:
    summary = dag.timetable_summary
    if summary is None and details is not None:
        summary = details.get("timetable_summary")
    if summary is None:
        ev = [f"timetable: {(details or {}).get('timetable_description') or 'None'}"]
        if runs:    # it has been triggered: what happened to those runs is the story
            ev.append(f"{len(runs)} triggered run(s) so far")
        f.add("no_schedule", "info" if runs else "blocking",
              "it has no schedule (schedule=None): it runs only when triggered", ev,
              "trigger it (UI, API, `airflow dags trigger`), or give it a schedule")
    elif summary.lower().startswith(("asset", "dataset")):
        f.add("asset_triggered", "info",
              f"asset-triggered ({summary}): it runs when its upstream assets update",
              [f"timetable: {summary}"])


def capacity(f: Findings, details: dict, runs) -> None:
    limit = details.get("max_active_runs")
    running = details.get("running_runs")
    if running is None:
        running = sum(r.state == "running" for r in runs)
    queued = details.get("queued_runs")
    if queued is None:
        queued = sum(r.state == "queued" for r in runs)
    if limit and running >= limit:
        active = [r for r in runs if r.state == "running"]
        ev = [f"running: {r.run_id} since {ago(r.start_date, f.at)}" for r in active[:5]]
        if queued:
            ev.append(f"{queued} queued run(s) wait for a free slot")
        f.add("max_active_runs", "blocking",
              f"max_active_runs ({limit}) reached: {running} run(s) running, new runs wait", ev,
              "let the running run finish (or mark it failed/success), or raise max_active_runs")


def queued(f: Findings, dag) -> None:
    fn = capability(f.backend, "task_instances")
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
        since = ago(ts(t.get("queued_when")), f.at) if t.get("queued_when") else ""
        ev.append(f"{t['task_id']} in {t['run_id']}: {t['state']} in {where}"
                  + (f", queued {since}" if since else ""))
    empty = sorted({t["pool"] for t in waiting if t.get("pool_slots") == 0})
    title = f"{len(waiting)} task(s) waiting to start (queued/scheduled)"
    if empty:
        title += f": pool {', '.join(repr(p) for p in empty)} has 0 slots"
    if dag.is_paused:
        ev.append("the DAG is paused: the scheduler does not start its queued tasks")
    f.add("queued_tasks", "warning", title, ev,
          "check pool slots, [core] parallelism, max_active_tasks and that a "
          "scheduler and executor are running")


def failures(f: Findings, runs) -> None:
    finished = [r for r in runs if r.state in ("success", "failed")]
    if not finished or finished[0].state != "failed":
        return
    streak = 0
    for r in finished:
        if r.state != "failed":
            break
        streak += 1
    newest = finished[0]
    ev = [f"{r.run_id}: {r.state}, ended {ago(r.end_date, f.at)}" for r in finished[:5]]
    f.add("last_runs_failed", "warning",
          f"its last {streak} run(s) failed (latest {newest.run_id})", ev,
          "read the failed task's log in Airflow; fix and clear the run")


def info(f: Findings, dag, details, runs) -> None:
    if details is not None and dag.timetable_summary is not None \
            and details.get("catchup") is False:
        f.add("catchup_off", "info",
              "catchup is off: missed intervals are not run, only the latest one",
              ["catchup: False"])
    if dag.next_dagrun_run_after:
        f.add("next_run", "info", f"next scheduled run after {dag.next_dagrun_run_after}", [])
    if runs:
        r = runs[0]
        f.add("last_run", "info", f"latest run {r.run_id}: {r.state}"
              + (f", started {ago(r.start_date, f.at)}" if r.start_date else ""), [])
