"""Ratio 3: offline `pausectl plan --format json` of 100k DAGs x 2k rules (1,000 dag entries +
1,000 groups, bench/resolve.py's state) vs reading the same inputs: the snapshot with
`json.loads` and the environment file with PyYAML's C loader. Each side is a whole process,
byte-compiled first as an installed package is, timed from outside (start to exit, interpreter
start-up and teardown included: what a user waits for), its CPU seconds and peak RSS its own;
the best of two is kept. The plan runs as `pausectl plan bench --format json > plan.json`.
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import resolve  # noqa: E402  (bench/resolve.py: the generated state)

READ_INPUTS = """import json, yaml
from pathlib import Path
json.loads(Path("state/snapshots/bench.json").read_text())
yaml.load(Path("state/bench.yaml").read_text(), Loader=yaml.CSafeLoader)
yaml.load(Path("state/pausectl.yaml").read_text(), Loader=yaml.CSafeLoader)
"""


def _process(argv: list[str], cwd: Path, stdout) -> dict:
    """One process, start to exit: wall seconds, CPU seconds (user + system), peak RSS."""
    with tempfile.TemporaryFile() as err:    # a file, not a pipe: no stall while waiting
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=stdout, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-300:]
            raise RuntimeError(f"{argv[1:3]} exited {proc.returncode}: {tail}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024}


def measure(root: Path, mode: str, trials: int = 2) -> dict:
    runs = []
    for _ in range(trials):
        if mode == "inputs":
            runs.append(_process([sys.executable, "-c", READ_INPUTS], root, subprocess.DEVNULL))
        else:
            with open(root / "plan.json", "wb") as out:
                runs.append(_process([sys.executable, "-m", "reconciler", "plan", "bench",
                                      "--format", "json"], root, out))
    return min(runs, key=lambda r: r["seconds"])


def _byte_compile() -> None:
    """A pip-installed pausectl ships compiled; the editable one here does not, and this box
    sets PYTHONDONTWRITEBYTECODE, so without this each timed plan would compile ~70 modules
    (0.2-0.3 s). py_compile writes the .pyc files whatever that variable says."""
    compileall.compile_dir(str(HERE.parent / "reconciler"), quiet=1)


def run(tmp: Path, sizes=(10_000, 100_000)) -> dict:
    _byte_compile()
    out = {}
    for n in sizes:
        root = tmp / f"offline-{n}"
        resolve.build(root, n)
        out[n] = {"inputs": measure(root, "inputs"), "plan": measure(root, "plan")}
        out[n]["bytes"] = (root / "plan.json").stat().st_size
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(run(Path(d)), indent=1))
