"""Benchmark against a real local Airflow 3 (the harness): how fast pausectl reads and writes.

(a) `pausectl plan` over N DAGs vs a bare paged listing of the same DAGs (the floor);
(b) apply of 1,000 flips vs a sequential single-PATCH loop vs one bulk PATCH;
(c) 20 `airflow dags pause` CLI calls, extrapolated to 1,000.
Every baseline is measured in the same run, on the same server. Prints times and ratios.

    python bench/live.py [--dags 5000] [--flips 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit.harness import AirflowServer, make_dags  # noqa: E402


def bare_listing(server: AirflowServer, headers: dict) -> int:
    n, offset = 0, 0
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        while True:
            r = http.get("/api/v2/dags", params={"limit": 100, "offset": offset,
                                                 "exclude_stale": "false"})
            rows = r.json()["dags"]
            n += len(rows)
            offset += len(rows)
            if not rows:
                return n


def state_repo(dest: Path, server: AirflowServer, paused: bool) -> Path:
    state = dest / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "pausectl.yaml").write_text(
        "environments:\n  bench:\n    backend: {type: airflow-api, url: \"" + server.url + "\", "
        "auth: password-token, username_env: BENCH_USER, password_env: BENCH_PASSWORD}\n"
        "safety: {max_changes: 100000}\n"
        "rollout: {batches: [\"100%\"], gate: {wait_seconds: 0, import_errors: ignore, stale: ignore}}\n")
    (state / "bench.yaml").write_text(
        "environment: bench\ndefaults: {unmanaged: report}\ngroups:\n"
        f"  - {{name: all-b, match: {{dag_id: \"*_b*\"}}, paused: {str(paused).lower()}, "
        "reason: bench, owner: bench}\n")
    return state


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dags", type=int, default=5000)
    ap.add_argument("--flips", type=int, default=1000)
    ap.add_argument("--cli-calls", type=int, default=20)
    args = ap.parse_args()
    specs = make_dags(args.dags)
    print(f"starting Airflow 3 with {args.dags} DAGs ...", flush=True)
    with AirflowServer(major=3, dags=specs, root=ROOT) as server, \
            tempfile.TemporaryDirectory() as tmp:
        os.environ.update(BENCH_USER=server.username, BENCH_PASSWORD=server.password,
                          PAUSECTL_JOURNAL_DIR=str(Path(tmp) / "journal"))
        headers = server.auth_headers()
        from reconciler.apply.executor import ApplyOptions, apply_plan
        from reconciler.engine import load, open_backend, plan_env

        # (a) plan vs bare listing
        state = state_repo(Path(tmp), server, paused=True)
        ctx = load(state, "bench")

        def plan_once():
            backend = open_backend(ctx.cfg, "bench")
            try:
                plan_env(ctx, backend)
            finally:
                backend.close()

        t_list = timed(lambda: bare_listing(server, headers))
        t_plan = timed(plan_once)
        print(f"\n(a) {args.dags} DAGs: bare paged listing {t_list:.3f}s, pausectl plan "
              f"{t_plan:.3f}s -> plan/listing = {t_plan / t_list:.2f}x")

        # (b) 1,000 flips: pausectl apply vs sequential single PATCH vs one bulk PATCH
        flip_ids = [s.dag_id for s in specs[: args.flips]]
        server.reset(paused=True, variables=True)
        sub = Path(tmp) / "flips"
        state = state_repo(sub, server, paused=True)
        (state / "bench.yaml").write_text(
            "environment: bench\ndefaults: {unmanaged: ignore}\ndags:\n" + "".join(
                f"  {d}: {{paused: false}}\n" for d in flip_ids))
        ctx = load(state, "bench")
        backend = open_backend(ctx.cfg, "bench")
        plan, _, _ = plan_env(ctx, backend)
        assert len(plan.changes) == args.flips, len(plan.changes)
        t0 = time.perf_counter()
        result = apply_plan(ctx, backend, plan, ApplyOptions(log=lambda s: None))
        t_apply = time.perf_counter() - t0
        backend.close()
        assert result.status == "done", result.status

        server.reset(paused=True, variables=True)
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            t0 = time.perf_counter()
            for d in flip_ids:
                http.patch(f"/api/v2/dags/{d}", json={"is_paused": False}).raise_for_status()
            t_seq = time.perf_counter() - t0
            server.reset(paused=True, variables=True)
            t0 = time.perf_counter()
            http.patch("/api/v2/dags", params={"dag_id_pattern": "%"},
                       json={"is_paused": False}).raise_for_status()
            t_bulk = time.perf_counter() - t0
        print(f"(b) {args.flips} flips: pausectl apply {t_apply:.3f}s, sequential single PATCH "
              f"{t_seq:.3f}s, one bulk PATCH (all {args.dags}) {t_bulk:.3f}s")
        print(f"    sequential/apply = {t_seq / t_apply:.1f}x faster; apply/bulk = "
              f"{t_apply / t_bulk:.2f}x")

        # (c) the Airflow CLI
        times = []
        for d in flip_ids[: args.cli_calls]:
            t0 = time.perf_counter()
            server.airflow("dags", "pause", d, "-y")
            times.append(time.perf_counter() - t0)
        per = statistics.median(times)
        print(f"(c) `airflow dags pause`: median {per:.2f}s per call over {len(times)} calls -> "
              f"{per * args.flips:.0f}s for {args.flips} (extrapolated); "
              f"{per * args.flips / t_apply:.0f}x slower than pausectl apply")


if __name__ == "__main__":
    main()
