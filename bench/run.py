"""`make bench`: the five ratios of issue 14 side by side in one run, with request counts.

Two real Airflow 3.3.2 servers from the harness (testkit), started together: `big` with
5,000 generated DAGs and `small` with 1,000. Every baseline runs in the same process, on
the same server, from the same live state, right next to what it is compared with.

    python bench/run.py [--quick]   (--quick: 2,000 / 500 DAGs, 10k offline only)

Prints one table; timings are medians of 3 (the sequential loops: 1 run). Nothing asserts
a time: these are measurements, and on a shared 2-core box they move with its load (shown).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402,F401  (installs the request counter first)
import emergency_ratio  # noqa: E402
import flips  # noqa: E402
import offline  # noqa: E402
import reads  # noqa: E402
from testkit.harness import AirflowServer, make_dags  # noqa: E402
from testkit.server import start_all  # noqa: E402


def _row(name: str, ours, base, goal: str, ok: bool | None, faster: bool = False) -> str:
    """One table row; `faster`: the ratio is baseline / pausectl (how many times faster)."""
    ratio = (base[0] / ours[0] if faster else ours[0] / base[0]) if base[0] and ours[0] else 0
    verdict = "" if ok is None else ("met" if ok else "NOT met")
    return (f"| {name} | {ours[0]:.3f} s ({ours[1]} req) | {base[0]:.3f} s ({base[1]} req) | "
            f"{ratio:.2f}x{' faster' if faster else ''} | {goal} | {verdict} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write every number here")
    ap.add_argument("--trials", type=int, default=3, help="timed runs per measurement")
    ap.add_argument("--no-impact", action="store_true",
                    help="skip plan/apply with the impact preview (its per-DAG reads take "
                         "minutes on a loaded box); the rest is measured as usual")
    ap.add_argument("--offline-from", metavar="FILE",
                    help="take the offline part from an earlier --json (it needs no server)")
    args = ap.parse_args()
    flips.WITH_IMPACT = reads.WITH_IMPACT = not args.no_impact
    n_big, n_small = (2000, 500) if args.quick else (5000, 1000)
    started = datetime.now(timezone.utc)
    print(f"pausectl bench, {started:%Y-%m-%d %H:%M} UTC; {common.load_line()}", flush=True)
    results: dict = {"date": started.isoformat(), "load_start": common.load_line()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        common.bench_env(tmp)
        t = time.perf_counter()
        results["offline"] = (json.loads(Path(args.offline_from).read_text())["offline"]
                              if args.offline_from else
                              offline.run(tmp, (10_000,) if args.quick else (10_000, 100_000)))
        print(f"offline done in {time.perf_counter() - t:.0f}s: "
              f"{json.dumps(results['offline'])}", flush=True)
        big = AirflowServer(major=3, dags=make_dags(n_big), root=common.ROOT)
        small = AirflowServer(major=3, dags=make_dags(n_small), root=common.ROOT)
        t = time.perf_counter()
        start_all([big, small])
        print(f"servers up in {time.perf_counter() - t:.0f}s: {n_big} and {n_small} DAGs "
              f"(Airflow {big.version})", flush=True)
        try:
            # each part's numbers are printed as soon as they are in (a long run on a busy
            # box can be stopped and still report what it measured)
            n = args.trials
            for key, part in (("plan", lambda: reads.plan_vs_listing(big, tmp, trials=n)),
                              ("flips", lambda: flips.run(big, tmp, trials=n)),
                              ("emergency", lambda: emergency_ratio.run(small, trials=n)),
                              ("fleet", lambda: reads.fleet_drift(big, small, tmp, trials=n))):
                t = time.perf_counter()
                results[key] = part()
                print(f"{key} done in {time.perf_counter() - t:.0f}s: "
                      f"{json.dumps(results[key], default=str)}", flush=True)
        finally:
            big.stop()
            small.stop()
    results["load_end"] = common.load_line()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print_table(results)
    return 0


def print_table(r: dict) -> None:
    f, p, e, fl = r["flips"], r["plan"], r["emergency"], r["fleet"]
    print(f"\n## pausectl bench ({r['date'][:16]} UTC)\n")
    print(f"load: start {r['load_start']}; end {r['load_end']}\n")
    print("| operation | pausectl | baseline | ratio | goal | |")
    print("|---|---|---|---|---|---|")
    n = f["flips"]
    core = "" if "apply" not in f else ", without the impact preview"
    if "apply" in f:
        print(_row(f"apply {n} flips, default gate vs sequential PATCH loop", f["apply"],
                   f["sequential"], ">= 20x faster", f["sequential"][0] / f["apply"][0] >= 20,
                   faster=True))
    print(_row(f"apply {n} flips{core or ''}, default gate vs sequential PATCH loop",
               f["apply_core"], f["sequential"], ">= 20x faster",
               f["sequential"][0] / f["apply_core"][0] >= 20, faster=True))
    if "apply" in f:
        print(_row(f"apply {n} flips vs one bulk PATCH (gate waits 0)", f["apply"], f["bulk"],
                   "<= 3x", f["apply"][0] / f["bulk"][0] <= 3))
    print(_row(f"apply {n} flips{core} vs one bulk PATCH (gate waits 0)", f["apply_core"],
               f["bulk"], "<= 3x", f["apply_core"][0] / f["bulk"][0] <= 3))
    ins = f.get("inside") or {}
    if "seconds" in ins:    # the same apply with the dagmodel backend, in the server's venv
        ours = (ins["seconds"], ins["statements"])
        print(_row(f"apply {n} flips inside Airflow (dagmodel; SQL statements) vs sequential "
                   "PATCH loop", ours, f["sequential"], ">= 20x faster",
                   f["sequential"][0] / ours[0] >= 20, faster=True))
        print(_row(f"apply {n} flips inside Airflow (dagmodel) vs one bulk PATCH", ours,
                   f["bulk"], "<= 3x", ours[0] / f["bulk"][0] <= 3))
    elif ins:
        print(f"| apply inside Airflow (dagmodel) | | {ins.get('error')} | | | |")
    print(_row(f"apply {n} flips vs bulk PATCH + its verifying listing", f["apply_core"],
               f["bulk_verified"], "(DESIGN: verify by listing)", None))
    c = f["client"]
    if "error" in c:
        print(f"| apache-airflow-client list + patch_dag x{n} | | {c['error']} | | | |")
    else:
        print(_row(f"apply vs apache-airflow-client {c['version']} list + patch_dag x{c['dags']}",
                   f["apply_core"], (c["seconds"], c["requests"]), "(reference)", None,
                   faster=True))
    cli = f["cli_per_dag"]
    a = f["apply_core"][0]
    print(f"| apply vs `airflow dags unpause` x{n} | {a:.3f} s | "
          f"{cli['median'] * n:.0f} s (median {cli['median']:.2f} s x {n}, sampled "
          f"{cli['sample']}) | {cli['median'] * n / a:.0f}x faster | (reference) | |")
    if "plan" in p:
        print(_row(f"plan {p['dags']} live DAGs vs bare paged listing (limit {p['page']})",
                   p["plan"], p["listing"], "<= 1.3x", p["plan"][0] / p["listing"][0] <= 1.3))
    print(_row(f"plan {p['dags']} live DAGs{'' if 'plan' not in p else ', no impact preview'}"
               f" vs bare paged listing (limit {p['page']})", p["plan_core"], p["listing"],
               "<= 1.3x", p["plan_core"][0] / p["listing"][0] <= 1.3))
    offline = {int(k): v for k, v in r["offline"].items()}       # JSON keys are strings
    for size, o in sorted(offline.items()):
        ours = (o["plan"]["seconds"], 0)
        base = (o["inputs"]["seconds"], 0)
        print(_row(f"offline plan --format json {size:,} DAGs x 2k rules vs json+C YAML "
                   f"(RSS {o['plan']['rss_mb']:.0f} MB)", ours, base, "<= 3x, <= 500 MB",
                   ours[0] / base[0] <= 3 and o["plan"]["rss_mb"] <= 500))
    sizes = sorted(offline)
    if len(sizes) > 1:
        a, b = (offline[s]["plan"]["seconds"] / s for s in (sizes[0], sizes[-1]))
        print(f"| offline growth {sizes[0]:,} -> {sizes[-1]:,} (time per DAG) | | | {b / a:.2f}x "
              f"| <= 1x (linear or better) | {'met' if b / a <= 1.05 else 'NOT met'} |")
    print(_row(f"emergency pause of {e['targets']} DAGs vs listing + one PATCH", e["pause"],
               e["baseline"], "<= 1.5x", e["pause"][0] / e["baseline"][0] <= 1.5))
    slow = fl.get("slowest_interleaved") or fl["alone"][fl["slowest"]]   # turn by turn
    print(_row(f"drift over {fl['envs']} envs on {fl.get('servers', '?')} servers at once vs "
               f"the slowest ({fl['slowest']}) alone", fl["fleet"], slow, "<= 1.5x",
               fl["fleet"][0] / slow[0] <= 1.5))
    print(_row("the same 8 drifts one after another vs all at once", (fl["sequential"], 0),
               fl["fleet"], "(reference)", None, faster=False))
    print("\nrequests of one apply (no impact preview):", json.dumps(f["apply_paths"]))
    print("requests of one plan (no impact preview):", json.dumps(p["plan_paths"]))
    if "fleet_paths" in fl:
        print(f"requests of the {fl['envs']} drifts at once ({fl['alone_requests']} one by one):",
              json.dumps(fl["fleet_paths"]))


if __name__ == "__main__":
    # SIGTERM (a stopped run) goes through main's `finally`: the servers stop with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if sys.argv[1:2] == ["--table"]:        # print the table of an earlier --json run
        print_table(json.loads(Path(sys.argv[2]).read_text()))
        sys.exit(0)
    sys.exit(main())
