"""Ratio 1 inside Airflow: the same `pausectl apply` of 1,000 flips (bench/flips.py's state,
rollout and gate) with the `dagmodel` backend, run the way the in-Airflow DAG's operators
run it: in the server's own venv, against its metadata database (SQLite here).

Timed inside that process, from the call to `main([... "apply" ...])` to its return, after
Airflow and pausectl are imported, SQLAlchemy's mappers configured (0.75 s at a process's
first ORM use, which a scheduler or task has paid) and one untimed `plan` run (its lazy
imports, statement caches); the REST baselines are timed after their client exists too.
The SQL statements it sends are counted (its "requests"), and the mapper configurations
inside the timed apply (0 on 3.3.2: nothing in it configures a mapper again). Reset
between trials from the bench process, like flips.py. The REST baselines it is compared with are flips.py's,
measured in the same run on the same server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from inside_airflow import inside_env, last_json_line  # noqa: E402

SCRIPT = r"""
import contextlib, io, json, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
from airflow.models import DagModel  # noqa: F401  (import and configure Airflow untimed)
from airflow.models import import_all_models
from sqlalchemy.orm import Mapper, configure_mappers
import_all_models()
configure_mappers()   # once per process (0.8 s): a task or scheduler has done it already
from reconciler.cli.main import main
statements, configured = [0], [0]
event.listen(Engine, "before_cursor_execute", lambda *a, **k: statements.__setitem__(0, statements[0] + 1))
event.listen(Mapper, "mapper_configured", lambda *a: configured.__setitem__(0, configured[0] + 1))
state, env = sys.argv[1:3]
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:   # untimed: the process's first plan (lazy imports, SQLAlchemy statement caches)
        main(["--state", state, "plan", env])
    except SystemExit:
        pass
statements[0] = configured[0] = 0
out, err = io.StringIO(), io.StringIO()
t0 = time.perf_counter()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        main(["--state", state, "apply", env, "--yes"])
        code = 0
    except SystemExit as e:
        code = e.code or 0
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "statements": statements[0], "code": code,
                  "mapper_configs": configured[0],
                  "tail": (out.getvalue() + err.getvalue())[-600:]}))
"""


def write_state(dest: Path, ids: list[str], rollout: str) -> Path:
    state = dest / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "pausectl.yaml").write_text(
        "environments:\n  inside:\n    backend: {type: dagmodel}\n"
        "safety: {max_changes: 100000}\n" + rollout)
    (state / "inside.yaml").write_text(
        "environment: inside\ndefaults: {unmanaged: ignore}\ndags:\n"
        + "".join(f"  {d}: {{paused: false}}\n" for d in ids))
    return state


def run(server, tmp: Path, ids: list[str], rollout: str, trials: int = 3) -> dict:
    """Median seconds and the SQL statements of one apply, with the dagmodel backend."""
    state = write_state(tmp / "inside", ids, rollout)
    env = inside_env(server, {"PAUSECTL_JOURNAL_DIR": str(tmp / "inside-journal")})
    times, statements, configs = [], 0, 0
    for _ in range(trials):
        server.reset(paused=True, variables=True)
        p = subprocess.run([str(server.venv / "bin" / "python"), "-c", SCRIPT, str(state),
                            "inside"], env=env, cwd=server.home, capture_output=True,
                           text=True, timeout=900)
        if p.returncode:
            return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1]}
        one = last_json_line(p.stdout)
        if one["code"]:
            return {"error": f"apply exited {one['code']}: {one['tail'].strip()[-300:]}"}
        times.append(one["seconds"])
        statements, configs = one["statements"], one.get("mapper_configs", 0)
    left = [d for d, p in server.query("SELECT dag_id, is_paused FROM dag") if d in set(ids) and p]
    if left:
        return {"error": f"apply left {len(left)} DAG(s) paused"}
    times.sort()
    return {"seconds": times[len(times) // 2], "statements": statements, "trials": trials,
            "mapper_configs": configs}


if __name__ == "__main__":      # alone, against a running harness server: inside.py HOME
    print(json.dumps({"usage": "imported by bench/run.py (flips)"}))
