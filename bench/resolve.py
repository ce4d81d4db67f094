"""Benchmark: load + resolve + plan for 10k, 50k and 100k DAGs against 2,000 rules.

Each size runs in a fresh process so peak RSS is its own. The baseline, measured in the same
run, is a bare `json.load` of the same snapshot: the least any plan must do.
Prints time, peak RSS, time per DAG and the growth ratio against 10k.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (10_000, 50_000, 100_000)
N_DAG_RULES = 1_000
N_GROUPS = 1_000
TAGS = [f"tag{i}" for i in range(200)]
OWNERS = [f"team{i}" for i in range(50)]
PREFIXES = [f"p{i:03d}" for i in range(400)]


def dag_id(i: int) -> str:
    return f"{PREFIXES[i % len(PREFIXES)]}_job_{i:06d}"


def build(root: Path, n: int) -> None:
    rnd = random.Random(42)
    state = root / "state"
    (state / "snapshots").mkdir(parents=True, exist_ok=True)
    (state / "pausectl.yaml").write_text(
        "environments:\n  bench: {backend: {type: snapshot, path: snapshots/bench.json}}\n"
        "precedence: {layers: [emergency, dag, group, defaults], tie: pause}\n")
    lines = ["environment: bench", "defaults: {unmanaged: report}", "dags:"]
    for k in range(N_DAG_RULES):
        i = rnd.randrange(100_000)
        lines.append(f"  {dag_id(i)}: {{paused: {str(k % 2 == 0).lower()}, reason: r{k}, owner: o{k}}}")
    lines.append("groups:")
    for g in range(N_GROUPS):
        kind = g % 3
        if kind == 0:
            match = f"{{dag_id: \"{PREFIXES[g % len(PREFIXES)]}_job_0{g % 10}*\"}}"
        elif kind == 1:
            match = f"{{tags: [{TAGS[g % len(TAGS)]}]}}"
        else:
            match = f"{{owners: [{OWNERS[g % len(OWNERS)]}], tags: [{TAGS[(g * 7) % len(TAGS)]}]}}"
        lines.append(f"  - {{name: g{g}, match: {match}, paused: {str(g % 2 == 1).lower()}, "
                     f"reason: r, owner: o, priority: {g % 5}}}")
    # dedupe dag rules (random ids may repeat)
    seen, out = set(), []
    for ln in lines:
        key = ln.split(":")[0] if ln.startswith("  p") else None
        if key and key in seen:
            continue
        if key:
            seen.add(key)
        out.append(ln)
    (state / "bench.yaml").write_text("\n".join(out) + "\n")
    dags = [{"dag_id": dag_id(i), "is_paused": rnd.random() < 0.3,
             "tags": rnd.sample(TAGS, 2), "owners": [rnd.choice(OWNERS)]} for i in range(n)]
    (state / "snapshots" / "bench.json").write_text(json.dumps({"dags": dags}))


def child(root: str, mode: str) -> None:
    t0 = time.perf_counter()
    if mode == "baseline":
        json.loads((Path(root) / "state/snapshots/bench.json").read_text())
    else:
        from reconciler.engine import load, open_backend, plan_env
        ctx = load(Path(root) / "state", "bench")
        plan, _, _ = plan_env(ctx, open_backend(ctx.cfg, "bench"), with_events=False)
        assert plan.unchanged + len(plan.changes) + len(plan.unmanaged) > 0
    elapsed = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "rss_mb": rss_mb}))


def run(root: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(root), mode],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    print(f"pausectl bench: load+resolve+plan, {N_DAG_RULES} dag rules + {N_GROUPS} groups")
    print(f"{'dags':>8} {'plan s':>8} {'json.load s':>11} {'vs json':>8} {'RSS MB':>7} "
          f"{'us/dag':>7} {'growth':>7}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            root = Path(tmp) / str(n)
            build(root, n)
            base = min((run(root, "baseline") for _ in range(2)), key=lambda r: r["seconds"])
            r = min((run(root, "plan") for _ in range(2)), key=lambda r: r["seconds"])
            per = r["seconds"] / n * 1e6
            first = first or per
            print(f"{n:>8} {r['seconds']:>8.3f} {base['seconds']:>11.3f} "
                  f"{r['seconds'] / base['seconds']:>7.1f}x {r['rss_mb']:>7.0f} {per:>7.2f} "
                  f"{per / first:>6.2f}x")
    print("growth = time per DAG relative to 10k (1.00x = linear)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
