"""`python -m testkit.harness up --major 3 --dags 1000` (or `--version 3.1.8`): start one
Airflow, print its url/username/password as JSON, stay in the foreground until killed."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from testkit.dags import STANDARD_DAGS, make_dags
from testkit.procs import HarnessError
from testkit.server import AirflowServer
from testkit.versions import MATRIX


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start one Airflow and stay in the foreground")
    up.add_argument("--major", type=int, choices=(2, 3), default=None,
                    help="3 -> Airflow 3.3.2 (the default), 2 -> 2.11.2")
    up.add_argument("--version", choices=MATRIX, default=None, dest="af_version",
                    help="any version of the matrix (instead of --major)")
    up.add_argument("--dags", type=int, default=None,
                    help="N generated DAGs (default: the standard test set of 154)")
    up.add_argument("--root", type=Path, default=Path.cwd(),
                    help="where .airflow/venv-N lives (default: current directory)")
    up.add_argument("--scheduler", action="store_true", help="also run a scheduler")
    up.add_argument("--port", type=int, default=None)
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--keep-home", action="store_true")
    args = parser.parse_args(argv)

    dags = STANDARD_DAGS if args.dags is None else make_dags(args.dags)
    try:
        server = AirflowServer(major=args.major, version=args.af_version, dags=dags,
                               root=args.root, scheduler=args.scheduler, port=args.port,
                               workers=args.workers, keep_home=args.keep_home)
    except ValueError as exc:           # e.g. --major 2 --version 3.1.8
        parser.error(str(exc))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
        print(json.dumps(server.info()), flush=True)
        while not stop.is_set():
            dead = [n for n, p in server._procs.items() if p.poll() is not None]
            if dead:
                print(f"harness: {', '.join(dead)} exited; see {server.logs}", file=sys.stderr)
                return 1
            stop.wait(1)
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0
