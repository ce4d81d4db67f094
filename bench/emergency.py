"""Benchmark: `pausectl emergency pause` of 1,000 DAGs on a real local Airflow 3 (the harness).

Compared, on the same server in the same run, starting each trial from the same live state
(80% of the DAGs running, the rest paused; Variables cleared):
(a) emergency pause as the CLI runs it, in-process: list every DAG, write the marker with the
    prior state, then one compact bulk PATCH (reconciler/apply/emergency.py);
(b) the same through the real CLI, in a fresh process (adds interpreter start-up);
(c) listing + backend.set_paused(targets): the generic verified bulk path of the backend;
(d) a sequential single-PATCH loop over the same targets (what a script would do);
(e) recover: put the exact prior state back (canary batches, no gate wait).
Exceptions: `--except tag:critical` (every DAG tagged critical keeps running) and
safety.protect `ml_b001*`. Prints medians, and the ratios against (a).

    python bench/emergency.py [--dags 1000] [--trials 5] [--page-size 1000]
                              [--url URL --home AIRFLOW_HOME]

`--page-size N` starts the server with `[api] maximum_page_limit = N` and gives the backend
`page_size: N`: Airflow's default cap (100) makes listing 1,000 DAGs 10 requests, most of the
emergency's time; a server tuned to 1,000 lists them in one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.apply import emergency as em  # noqa: E402
from reconciler.live.airflow_api import AirflowApiBackend  # noqa: E402
from testkit.harness import AirflowServer, make_dags  # noqa: E402

EXCEPT = ["tag:critical"]
PROTECT = ["ml_b001*"]
CREDS = {"BENCH_USER": "admin", "BENCH_PASSWORD": "admin"}


def reset(db: Path, ids: list[str]) -> dict[str, bool]:
    """80% running, 20% paused; no Variables. Returns the state."""
    want = {d: (i % 10 >= 8) for i, d in enumerate(ids)}
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as c, c:
        c.executemany("UPDATE dag SET is_paused = ? WHERE dag_id = ?",
                      [(int(p), d) for d, p in want.items()])
        c.execute("DELETE FROM variable")
    return want


def states(db: Path) -> dict[str, bool]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as c:
        return {d: bool(p) for d, p in c.execute("SELECT dag_id, is_paused FROM dag")}


PAGE_SIZE = 100


def backend(url: str) -> AirflowApiBackend:
    return AirflowApiBackend("bench", {"type": "airflow-api", "url": url, "page_size": PAGE_SIZE,
                                       "username_env": "BENCH_USER",
                                       "password_env": "BENCH_PASSWORD"}, env=CREDS)


def state_repo(dest: Path, url: str) -> Path:
    root = dest / "state"
    root.mkdir(parents=True, exist_ok=True)
    (root / "pausectl.yaml").write_text(
        "environments:\n  bench:\n    backend: {type: airflow-api, url: \"" + url + "\", "
        "auth: password-token, username_env: BENCH_USER, password_env: BENCH_PASSWORD, "
        f"page_size: {PAGE_SIZE}}}\n"
        f"safety: {{max_changes: 100000, protect: {json.dumps(PROTECT)}}}\n"
        "rollout: {batches: [1, \"10%\", \"100%\"], canary: {tags: [canary]}, "
        "gate: {wait_seconds: 0}}\n")
    (root / "bench.yaml").write_text("environment: bench\ndefaults: {unmanaged: ignore}\n")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dags", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--url", help="use this running harness server (with --home)")
    ap.add_argument("--home", help="its AIRFLOW_HOME (to reset the state between trials)")
    ap.add_argument("--page-size", type=int, default=100,
                    help="server maximum_page_limit and backend page_size (default 100)")
    args = ap.parse_args()
    global PAGE_SIZE
    PAGE_SIZE = args.page_size

    server = None
    if args.url:
        url, db = args.url, Path(args.home) / "airflow.db"
    else:
        t = time.perf_counter()
        server = AirflowServer(major=3, dags=make_dags(args.dags), root=ROOT, extra_env={
            "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": str(max(100, PAGE_SIZE))}).start()
        url, db = server.url, server.db_path
        print(f"harness: Airflow 3 with {args.dags} DAGs up in {time.perf_counter() - t:.0f}s")
    try:
        ids = sorted(states(db))
        print(f"{len(ids)} DAGs, page size {PAGE_SIZE}; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs")
        res: dict[str, list[float]] = {k: [] for k in "abcde"}
        detail: list[dict] = []
        with tempfile.TemporaryDirectory() as tmp:
            root = state_repo(Path(tmp), url)
            env = {**os.environ, **CREDS, "PAUSECTL_JOURNAL_DIR": str(Path(tmp) / "j")}
            for _ in range(args.trials):
                # (a) in-process, exactly what the CLI command does after parsing
                prior = reset(db, ids)
                b = backend(url)
                t = time.perf_counter()
                s = em.pause(b, "bench", "bench", "bench", EXCEPT, PROTECT, by="bench")
                res["a"].append(time.perf_counter() - t)
                detail.append(s["seconds"])
                after = states(db)
                targets = sorted(em.read_marker(b, "bench")["prior"])
                assert all(after[d] for d in targets) and not s["errors"]
                assert all(after[d] == prior[d] for d in ids if d not in targets)
                # (e) recover, the CLI in-process
                from reconciler.cli.main import main as cli
                os.environ.update(CREDS, PAUSECTL_JOURNAL_DIR=env["PAUSECTL_JOURNAL_DIR"])
                t = time.perf_counter()
                with contextlib.redirect_stdout(open(os.devnull, "w")), \
                        contextlib.redirect_stderr(open(os.devnull, "w")):
                    try:
                        cli(["emergency", "recover", "bench", "--yes", "--state", str(root)])
                    except SystemExit as e:
                        assert not e.code, e.code
                res["e"].append(time.perf_counter() - t)
                assert states(db) == prior, "recover did not restore the prior state"
                b.close()
                # (b) the real CLI in a fresh process
                reset(db, ids)
                t = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "reconciler", "emergency", "pause",
                                    "bench", "--reason", "bench", "--state", str(root),
                                    *sum((["--except", e] for e in EXCEPT), [])],
                                   env=env, capture_output=True, text=True)
                res["b"].append(time.perf_counter() - t)
                assert p.returncode == 0, p.stderr
                # (c) listing + the backend's generic set_paused
                reset(db, ids)
                b = backend(url)
                t = time.perf_counter()
                live = b.list_dags()
                hold = em.covered({"except": em.except_specs(EXCEPT, PROTECT)}, live)
                run = [d.dag_id for d in live if not d.is_paused and d.dag_id in hold]
                r = b.set_paused(run, True)
                res["c"].append(time.perf_counter() - t)
                assert not r.errors
                b.close()
            # (d) sequential single PATCHes over the same targets (once: it is slow)
            reset(db, ids)
            b = backend(url)
            b.list_dags()
            t = time.perf_counter()
            for d in run:
                b._patch_one(d, True)
            res["d"].append(time.perf_counter() - t)
            b.close()
        med = {k: statistics.median(v) for k, v in res.items()}
        parts = {k: statistics.median(x[k] for x in detail) for k in detail[0]}
        print(f"paused per trial: {len(run)} DAGs; kept running: "
              f"{sum(1 for d in ids if d not in hold and not prior[d])}")
        rows = [("a", "emergency pause, in-process (list + marker + bulk)"),
                ("b", "emergency pause, `pausectl` in a fresh process"),
                ("c", "list + backend.set_paused (generic verified bulk)"),
                ("d", "sequential single-PATCH loop (no listing)"),
                ("e", "emergency recover (canary batches, journal, lock)")]
        for k, label in rows:
            runs = " ".join(f"{x:.3f}" for x in res[k])
            print(f"({k}) {label:52s} median {med[k]:7.3f}s  ratio {med[k] / med['a']:6.2f}x  "
                  f"[{runs}]")
        print(f"(a) split: list {parts['list']:.3f}s, marker {parts['marker']:.3f}s, "
              f"pause {parts['pause']:.3f}s")
        print(f"single-PATCH loop / emergency pause: {med['d'] / med['a']:.1f}x slower; "
              f"generic set_paused / emergency pause: {med['c'] / med['a']:.1f}x")
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
