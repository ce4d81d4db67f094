"""Ratio 4: `pausectl emergency pause` of 1,000 running DAGs (in-process, what the CLI does
after parsing: list and read the marker at once, write the marker with the prior state, bulk
PATCH, verify, re-read the marker with the apply lock's holder) vs a bare listing + one bulk
PATCH (what a script that trusts the server would do). Both start from the same state: every
DAG running, no Variables; their trials alternate, so both see the same load. Requests are
counted per method and path. bench/emergency.py has the longer study (exceptions, the
fresh-process CLI, recover)."""

from __future__ import annotations

import statistics
import time

from common import CREDS, bare_listing, client, counted


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

    times: dict[str, list[float]] = {"pause": [], "baseline": []}
    paths: dict[str, dict] = {}
    for _ in range(trials):
        for name, fn in (("pause", pause), ("baseline", baseline)):
            reset()
            with counted() as c:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
            paths[name] = c
    out = {"targets": len(server.specs),
           **{k: (statistics.median(v), paths[k]["requests"]) for k, v in times.items()},
           "pause_paths": paths["pause"]["paths"], "baseline_paths": paths["baseline"]["paths"],
           "runs": {k: [round(x, 3) for x in v] for k, v in times.items()}}
    assert all(p for _, p in server.query("SELECT dag_id, is_paused FROM dag"))
    reset()
    return out
