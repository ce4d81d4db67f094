"""Ratio 4: `pausectl emergency pause` of 1,000 running DAGs (in-process, what the CLI does
after parsing: list, write the marker with the prior state, bulk PATCH, verify) vs a bare
listing + one bulk PATCH (what a script that trusts the server would do). Both start from
the same state: every DAG running, no Variables. bench/emergency.py has the longer study
(exceptions, the fresh-process CLI, recover)."""

from __future__ import annotations

from common import CREDS, bare_listing, client, measure


def run(server, trials: int = 3) -> dict:
    from reconciler.apply import emergency as em
    from reconciler.live.airflow_api import AirflowApiBackend

    def reset() -> None:
        server.reset(paused=False, variables=True)

    def pause() -> None:
        b = AirflowApiBackend("bench", {"type": "airflow-api", "url": server.url,
                                        "username_env": "BENCH_USER",
                                        "password_env": "BENCH_PASSWORD"}, env=CREDS)
        with b:
            s = em.pause(b, "bench", "bench", "bench", [], [], by="bench")
        assert s["paused"] == len(server.specs) and not s["errors"], s

    def baseline() -> None:
        bare_listing(server)
        with client(server) as http:
            http.patch("/dags", params={"dag_id_pattern": "%", "paused": "false"},
                       json={"is_paused": True}).raise_for_status()

    out = {"targets": len(server.specs), "pause": measure(pause, trials, reset),
           "baseline": measure(baseline, trials, reset)}
    assert all(p for _, p in server.query("SELECT dag_id, is_paused FROM dag"))
    reset()
    return out
