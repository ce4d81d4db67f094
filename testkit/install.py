"""Install every Airflow venv of the matrix that is missing, several at once, ahead of the tests.

`make test` starts `python3 -m testkit.install` in the background before it sets up pausectl's
own venv, so on a fresh machine (CI) the eight installs (~3 min each, mostly download and
unpack) overlap that setup and the tests that need no Airflow. Nothing waits on this process:
a test server's `ensure_venv` takes the same per-version file lock, so it blocks until that
version's install is done (or installs it itself if this process died). Versions already
marked installed are skipped without starting Airflow at all, so with a warm `.airflow/` this
exits at once. Stdlib only: it runs with the system Python, before `.venv` exists.

    python3 -m testkit.install [--jobs 3] [--root DIR] [VERSION ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import sys
import time
from pathlib import Path

from testkit.procs import _descendants
from testkit.versions import AIRFLOW_VERSIONS, EXTRA_PINS, MARKER, MATRIX, ensure_venv

# the standard servers (and every dedicated one) use these two: first
FIRST = (AIRFLOW_VERSIONS[3], AIRFLOW_VERSIONS[2])


def install_order(versions=MATRIX) -> list[str]:
    return [v for v in FIRST if v in versions] + [v for v in versions if v not in FIRST]


def missing(root: Path, versions=MATRIX) -> list[str]:
    """Versions whose venv has no marker for today's pins (cheap: no `airflow version`)."""
    base = Path(root).resolve() / ".airflow"
    out = []
    for v in install_order(versions):
        marker = base / f"venv-{v}" / MARKER
        want = [f"apache-airflow=={v}", *EXTRA_PINS[v]]
        if not (marker.exists() and marker.read_text().split() == want):
            out.append(v)
    return out


def install(root: Path, versions: list[str], jobs: int) -> int:
    """Install `versions` with `jobs` pip runs at a time; print one line per version."""
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        starts = {v: time.monotonic() for v in versions}
        futures = {pool.submit(_timed, v, root, starts): v for v in versions}
        for future in concurrent.futures.as_completed(futures):
            v = futures[future]
            try:
                print(f"testkit.install: Airflow {v} ready in {future.result():.0f}s", flush=True)
            except Exception as exc:     # the test that needs it reports it (and retries)
                failed += 1
                print(f"testkit.install: Airflow {v} failed: {str(exc).splitlines()[0]}",
                      flush=True)
    return 1 if failed else 0


def _timed(version: str, root: Path, starts: dict[str, float]) -> float:
    starts[version] = time.monotonic()   # when a worker took it, not when it was queued
    ensure_venv(version, root)
    return time.monotonic() - starts[version]


def _stop(*_) -> None:
    """SIGTERM (the tests are over): kill the pip runs too, or they would outlive make. A
    venv left half-installed keeps its INSTALLING mark and is installed afresh next time."""
    for pid in _descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(143)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m testkit.install",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="*", metavar="VERSION",
                        help="default: the whole matrix")
    parser.add_argument("--jobs", type=int, default=3,
                        help="pip installs at a time (default 3: download-bound)")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    bad = [v for v in args.versions if v not in MATRIX]
    if bad:
        parser.error(f"not in the matrix: {', '.join(bad)} (matrix: {', '.join(MATRIX)})")
    if os.environ.get("PAUSECTL_SKIP_AIRFLOW") == "1" and \
            os.environ.get("CI", "").lower() not in ("true", "1"):
        return 0
    todo = missing(args.root, args.versions or MATRIX)
    if not todo:
        return 0
    signal.signal(signal.SIGTERM, _stop)
    print(f"testkit.install: installing Airflow {', '.join(todo)} ({args.jobs} at a time)",
          flush=True)
    return install(args.root, todo, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
