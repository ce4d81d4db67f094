"""Ratio 3: offline `pausectl plan --format json` of 100k DAGs x 2k rules (1,000 dag entries +
1,000 groups, bench/resolve.py's state) vs reading the same inputs: the snapshot with
`json.loads` and the environment file with PyYAML's C loader. Each run is a fresh process
(its peak RSS is its own); the best of two is kept. The JSON goes to a file, through the
CLI's output guard, as `pausectl plan bench --format json > plan.json` would.

    python bench/offline.py --child ROOT plan|inputs     (one measurement, prints JSON)
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import resolve  # noqa: E402  (bench/resolve.py: the generated state)


def child(root: Path, mode: str) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "inputs":
        import yaml
        json.loads((root / "state/snapshots/bench.json").read_text())
        yaml.load((root / "state/bench.yaml").read_text(), Loader=yaml.CSafeLoader)
        yaml.load((root / "state/pausectl.yaml").read_text(), Loader=yaml.CSafeLoader)
    else:
        from reconciler.cli.main import main
        os.chdir(root)
        with open(root / "plan.json", "w") as out, contextlib.redirect_stdout(out):
            try:
                main(["plan", "bench", "--format", "json"])
            except SystemExit as e:
                if e.code not in (0, None):
                    raise
    seconds = time.perf_counter() - t0
    # CPU seconds too: on a loaded box they move less than the wall clock
    print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - c0,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(root: Path, mode: str, trials: int = 2) -> dict:
    runs = []
    for _ in range(trials):
        p = subprocess.run([sys.executable, __file__, "--child", str(root), mode],
                           capture_output=True, text=True, check=True)
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["seconds"])


def run(tmp: Path, sizes=(10_000, 100_000)) -> dict:
    out = {}
    for n in sizes:
        root = tmp / f"offline-{n}"
        resolve.build(root, n)
        out[n] = {"inputs": measure(root, "inputs"), "plan": measure(root, "plan")}
        out[n]["bytes"] = (root / "plan.json").stat().st_size
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3])
    else:
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(run(Path(d)), indent=1))
