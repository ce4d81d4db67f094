"""`pausectl doctor ENV DAG_ID`: why isn't my DAG running?

Every check looks at live Airflow (one Observation of the environment, observe.py) and at git
(the same Resolution plan and explain use, cascades included), and yields findings, most
decisive first:

    not in Airflow, stale file, emergency pause, paused (by which rule, or by which live change,
    from Airflow's audit log), a window that is closed, import errors, end_date passed,
    start_date in the future, no schedule, max_active_runs reached, tasks waiting in queue,
    last runs failed; and for information: catchup off, asset-triggered, the next run.

A finding is `{code, severity, title, evidence: [..], fix}`; severity `blocking` (no new runs
until it is fixed), `warning` (runs are delayed or failing) or `info`. The verdict is the title
of the first finding, so the answer comes first and the evidence after it.
The git-side checks are in doctor_pause.py, the Airflow-side ones in doctor_runs.py.

Checks that need more than the Backend protocol use optional backend methods when present:
`dag_details(dag_id)`, `import_errors(dag_id)`, `task_instances(dag_id, states)` (the
dagmodel backend has them; the REST API gets them through `live/api_extras.py`).
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import datetime

from reconciler.core.timeutil import iso
from reconciler.observe import Context, Observation, observe, only, resolve
from reconciler.operate import doctor_pause as pause
from reconciler.operate import doctor_runs as runs_checks
from reconciler.operate.doctor_findings import SEVERITIES, Findings, backend_kind, capability


class Doctor(Findings):
    def __init__(self, ctx: Context, backend, at: datetime):
        super().__init__(ctx, backend, at)
        self.details: dict | None = None

    def run(self, dag_id: str) -> dict:
        obs = observe(self.ctx, self.backend, self.at, events_for=only(dag_id), tolerant=True)
        return self.diagnose(obs, dag_id)

    def diagnose(self, obs: Observation, dag_id: str) -> dict:
        """Findings about `dag_id` from an observation (its events read for this DAG)."""
        self.notes.extend(obs.unread)
        dag = obs.dag(dag_id)
        if dag is None:
            pause.missing(self, dag_id, obs.live)
            return self._result(dag_id, None, None, obs)
        res = resolve(self.ctx, obs, self.at)
        dec = res.decisions[dag_id]
        details = self.details = self._details(dag_id)
        runs = self._runs(dag_id)
        runs_checks.stale(self, dag)
        runs_checks.import_errors(self, dag)
        pause.paused(self, dag, dec, res, obs, details, runs)
        pause.window(self, dag, dec, res)
        if details is not None:
            runs_checks.dates(self, dag, details)
            runs_checks.schedule(self, dag, details, runs)
            runs_checks.capacity(self, details, runs)
        runs_checks.queued(self, dag)
        runs_checks.failures(self, runs)
        runs_checks.info(self, dag, details, runs)
        return self._result(dag_id, dag, dec, obs)

    def _details(self, dag_id: str) -> dict | None:
        fn = capability(self.backend, "dag_details")
        if fn is None:
            self.notes.append("schedule, start_date, catchup, max_active_runs: the "
                              f"{backend_kind(self.backend)} backend has no DAG details")
            return None
        return fn(dag_id)

    def _runs(self, dag_id: str) -> list:
        try:
            return self.backend.dag_runs(dag_id, limit=25)
        except Exception as e:  # a backend that cannot read runs: say so, keep diagnosing
            self.notes.append(f"runs not checked: {e}")
            return []

    def _result(self, dag_id, dag, dec, obs: Observation) -> dict:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        self.findings.sort(key=lambda f: order[f.severity])    # stable: check order kept
        problems = [f for f in self.findings if f.severity != "info"]
        if problems:
            verdict = problems[0].title
        elif dag is not None:
            verdict = "nothing found that stops it: it is unpaused and schedulable"
        else:  # pragma: no cover
            verdict = "unknown"
        emergency = obs.emergency
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


def diagnose(ctx: Context, backend, dag_id: str, at: datetime) -> dict:
    return Doctor(ctx, backend, at).run(dag_id)


_MARK = {"blocking": "BLOCKING", "warning": "WARNING ", "info": "info    "}


def _state(paused) -> str:
    return {True: "paused", False: "running", None: "undecided"}[paused]


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
