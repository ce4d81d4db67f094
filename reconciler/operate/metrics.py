"""Prometheus metrics: `--metrics-file PATH` on plan, apply and drift writes the text format
(prometheus-client's own CollectorRegistry and write_to_textfile, atomic), for node_exporter's
textfile collector or any scraper that reads files.

Series (label `env` on all):
    pausectl_paused_dags{env}                 DAGs paused in Airflow (after the apply, for apply)
    pausectl_drift_dags{env}                  DAGs whose live pause state differs from git
                                              (plan changes + held), after the command
    pausectl_manual_drift_dags{env}           of those, changed by hand (drift attribution; drift)
    pausectl_pauses_past_until{env}           DAGs still paused by a pause whose `until` passed
    pausectl_auto_paused_dags{env,outcome}    DAGs Airflow paused by itself after failed runs that
                                              git wants running: outcome held (drift.auto_paused
                                              keep) | released (rule changed in git since) |
                                              enforced (policy enforce); after an apply only held
    pausectl_plan_changes{env,action}         planned changes, action pause|unpause
    pausectl_apply_duration_seconds{env}      wall time of the apply (apply)
    pausectl_gate_total{env,outcome}          health gate evaluations, outcome passed|failed (apply)
    pausectl_last_run_timestamp_seconds{env,command}   when this file was written, per command

Write one file per job (e.g. /var/lib/node_exporter/pausectl_prod_apply.prom): each write
replaces the file.
"""

from __future__ import annotations

from typing import Iterable

from reconciler.core.errors import PausectlError


class Metrics:
    def __init__(self, command: str = "plan"):
        from prometheus_client import CollectorRegistry, Counter, Gauge
        self.command = command
        r = self.registry = CollectorRegistry()
        self.paused = Gauge("pausectl_paused_dags", "DAGs paused in Airflow", ["env"],
                            registry=r)
        self.drift = Gauge("pausectl_drift_dags",
                           "DAGs whose live pause state differs from git", ["env"], registry=r)
        self.manual = Gauge("pausectl_manual_drift_dags",
                            "DAGs changed by hand away from git (drift attribution)", ["env"],
                            registry=r)
        self.past_until = Gauge("pausectl_pauses_past_until",
                                "DAGs still paused by a pause whose until has passed", ["env"],
                                registry=r)
        self.auto_paused = Gauge("pausectl_auto_paused_dags",
                                 "DAGs Airflow paused after failed runs that git wants running",
                                 ["env", "outcome"], registry=r)
        self.changes = Gauge("pausectl_plan_changes", "Planned pause state changes",
                             ["env", "action"], registry=r)
        self.duration = Gauge("pausectl_apply_duration_seconds", "Wall time of the last apply",
                              ["env"], registry=r)
        self.gates = Counter("pausectl_gate", "Health gate evaluations by outcome",
                             ["env", "outcome"], registry=r)
        self.last_run = Gauge("pausectl_last_run_timestamp_seconds",
                              "Unix time this pausectl command wrote its metrics",
                              ["env", "command"], registry=r)

    # ---------------------------------------------------------------------------------------
    def observe_plan(self, env: str, plan, live, resolution, applied: bool = False) -> None:
        """From a plan; with `applied`, as the state is once every planned change is made."""
        final = {d.dag_id: d.is_paused for d in live}
        if applied:
            for c in plan.changes:
                final[c.dag_id] = c.desired_paused
        self.paused.labels(env).set(sum(1 for p in final.values() if p))
        self.drift.labels(env).set((0 if applied else len(plan.changes)) + len(plan.held))
        self.past_until.labels(env).set(past_until(live, final, resolution))
        auto = {"held": 0, "released": 0, "enforced": 0}
        for entry in [h.get("auto_paused") for h in plan.held] + \
                ([] if applied else [c.auto_paused for c in plan.changes]):
            if entry:
                auto[entry["outcome"]] += 1
        for outcome, n in auto.items():
            self.auto_paused.labels(env, outcome).set(n)
        s = plan.summary()
        for action in ("pause", "unpause"):
            self.changes.labels(env, action).set(s[action])
        self.last_run.labels(env, self.command).set_to_current_time()

    def observe_drift(self, env: str, report: dict) -> None:
        self.manual.labels(env).set(len(report.get("drifted") or []))

    def observe_apply(self, env: str, status: str, seconds: float,
                      gates: Iterable[dict] | None) -> None:
        self.duration.labels(env).set(round(seconds, 3))
        self.gates.labels(env, "passed").inc(0)
        self.gates.labels(env, "failed").inc(0)
        for g in gates or ():
            self.gates.labels(env, "passed" if g.get("passed") else "failed").inc()

    def text(self) -> str:
        from prometheus_client import generate_latest
        return generate_latest(self.registry).decode("utf-8")

    def write(self, path: str) -> None:
        from pathlib import Path
        from prometheus_client import write_to_textfile
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(path), self.registry)
        except OSError as e:
            raise PausectlError(f"cannot write metrics: {e.strerror or e}", str(path)) from None


def past_until(live, final: dict, resolution) -> int:
    """Paused DAGs that a pause rule matches whose `until` is over (a forgotten pause that
    something still holds: a live change, or apply not run since it expired)."""
    resolver = resolution.resolver
    at = resolver.at
    n = 0
    for dag in live:
        if not final.get(dag.dag_id):
            continue
        if any(c.rule.paused and c.rule.until is not None and c.rule.until <= at
               for c in resolver.candidates(dag)):
            n += 1
    return n


def write_metrics(path: str | None, command: str, observe) -> list[str]:
    """Build and write a metrics file; `observe(metrics)` fills it. Returns warnings: a file
    that cannot be written never changes what the command did, only what it reports."""
    if not path:
        return []
    m = Metrics(command)
    observe(m)
    try:
        m.write(path)
    except PausectlError as e:
        return [str(e)]
    return []
