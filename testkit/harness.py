"""A local real Airflow for tests, the demo and benchmarks.

`ensure_venv` installs one Airflow of the version matrix (`MATRIX`: 2.9.3 ... 3.3.2; `major=3`
means 3.3.2, `major=2` 2.11.2) into its own virtualenv `ROOT/.airflow/venv-<version>`
(never into pausectl's own environment: pausectl only talks to Airflow over HTTP).
`AirflowServer` makes a throw-away AIRFLOW_HOME on SQLite, writes generated DAG files from
`DagSpec` values, registers them without a scheduler, and runs the API server (AF3,
`/api/v2`, JWT from `POST /auth/token`) or the webserver (AF2, `/api/v1`, HTTP basic auth)
on 127.0.0.1 only. Optionally a scheduler runs too, so DAGs really run.

    with AirflowServer(major=3, dags=STANDARD_DAGS) as af:
        httpx.get(f"{af.url}/api/v2/dags", headers=af.auth_headers())

    with AirflowServer(version="3.1.8", dags=STANDARD_DAGS) as af:   # any version of MATRIX
        af.auto_pause("etl_fails", failed_runs=3)                   # the scheduler's own write

CLI: `python -m testkit.harness up --major 3 --dags 1000` (or `--version 3.1.8`) starts one
and prints its url/username/password as JSON, then stays in the foreground until killed.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

# The version matrix (issue 12): every Airflow minor users run, 2.9 to 3.3, each in its own venv.
MATRIX: tuple[str, ...] = ("2.9.3", "2.10.5", "2.11.2", "3.0.6", "3.1.8", "3.2.1", "3.2.2",
                           "3.3.2")
AIRFLOW_VERSIONS = {3: "3.3.2", 2: "2.11.2"}     # the default per major: AirflowServer(major=N)
# Extra pins per version, installed together with apache-airflow (GitHub's constraints files are
# unreachable here, so only what an unconstrained install breaks is pinned, from PyPI, each to
# what a working neighbour version resolves; measured on Python 3.11, see docs/compat.md).
# fastapi is pinned with the extra Airflow requires: a bare `fastapi==X` made pip backtrack
# through ~80 fastapi releases for the `fastapi[extra]` requirement (measured).
EXTRA_PINS: dict[str, tuple[str, ...]] = {v: () for v in MATRIX}
# 3.0.6: (1) it signs tokens with `iss: []` when [api_auth] jwt_issuer is unset, and PyJWT >= 2.11
# refuses a non-string iss: every POST /auth/token is a 500 (2.10.1 is the last PyJWT without
# the check). (2) It gets fastapi 0.165, which commits the DB session (the exit of a `yield`
# dependency) after the response is sent: a GET right after a PATCH can read the old state
# (measured: a bulk PATCH's changes not yet in the DB). 3.1 caps fastapi < 0.118; 3.1.8's set.
EXTRA_PINS["3.0.6"] = ("pyjwt==2.10.1", "fastapi[standard]==0.117.1", "cadwyn==5.4.6")
# 3.2.1 / 3.2.2 get fastapi 0.163 / 0.165 (and cadwyn 9): the execution API's routes fail to
# build (pydantic "needs a discriminator field" for TITerminalStatePayload), so dag-processor,
# scheduler and api-server die at start. 3.3.2 caps fastapi < 0.137; 3.3.2's set (cadwyn 9
# needs fastapi >= 0.137.1).
EXTRA_PINS["3.2.1"] = EXTRA_PINS["3.2.2"] = ("fastapi[standard-no-fastapi-cloud-cli]==0.136.3",
                                              "cadwyn==7.0.0")
MARKER = ".pausectl-installed"
DAGS_PER_FILE = 250          # normal DAGs are generated in files of this many
READY_TIMEOUT = float(os.environ.get("PAUSECTL_AIRFLOW_READY_TIMEOUT", "180"))
DEFAULT_START = "2024-01-01T00:00:00+00:00"


class HarnessError(RuntimeError):
    """Airflow could not be installed or started; the message carries the log tail."""


# --------------------------------------------------------------------------- venv

def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def _airflow_version_ok(venv: Path, version: str) -> bool:
    airflow = venv / "bin" / "airflow"
    if not airflow.exists():
        return False
    with tempfile.TemporaryDirectory(prefix="pausectl-afcheck-") as home:
        env = _clean_environ()
        env.update(AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False")
        try:
            out = subprocess.run([str(airflow), "version"], env=env, capture_output=True,
                                 text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return False
    lines = out.stdout.strip().splitlines()
    return out.returncode == 0 and bool(lines) and lines[-1].strip() == version


_VERIFIED: set[Path] = set()


def resolve_version(version: str | int) -> str:
    """A matrix version string from a version ("3.1.8") or a major (3 -> its default)."""
    if isinstance(version, int) and not isinstance(version, bool):
        if version not in AIRFLOW_VERSIONS:
            raise ValueError(f"unsupported Airflow major version {version!r} (use 2 or 3)")
        return AIRFLOW_VERSIONS[version]
    if version not in MATRIX:
        raise ValueError(f"unsupported Airflow version {version!r} (matrix: {', '.join(MATRIX)})")
    return str(version)


def _pip(venv: Path, args: list[str], log: Path, version: str, mode: str = "a") -> None:
    env = _clean_environ()
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    with open(log, mode) as fh:
        cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off",
               *args]
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        raise HarnessError(f"installing Airflow {version} failed (exit {rc}); "
                           f"log {log}:\n{_tail(log)}")


def ensure_venv(version: str | int, root: Path) -> Path:
    """Return `root/.airflow/venv-<version>` with that Airflow (and its EXTRA_PINS), installing
    it if needed. `version` is a matrix version or a major (2/3: its default version).

    A marker file is written only after a successful install and check, so a half-finished
    install (killed pip, network error) is thrown away and redone. A venv without the marker
    whose `airflow version` prints the right version (made by hand or by a probe script) is
    adopted: the pins are pip-installed on top and the marker written. A file lock serialises
    concurrent callers (pytest-xdist workers, the demo) on the same root.
    """
    version = resolve_version(version)
    base = Path(root).resolve() / ".airflow"
    base.mkdir(parents=True, exist_ok=True)
    venv = base / f"venv-{version}"
    marker = venv / MARKER
    want = [f"apache-airflow=={version}", *EXTRA_PINS[version]]
    log = base / f"venv-{version}-install.log"
    with open(base / f"venv-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().split() == want:
            if venv in _VERIFIED:        # `airflow version` costs 2-10 s: once per process
                return venv
            if _airflow_version_ok(venv, version):
                _VERIFIED.add(venv)
                return venv
        t = time.monotonic()
        if venv.exists() and _airflow_version_ok(venv, version):
            if EXTRA_PINS[version]:      # adopt: only the pins are missing (or changed)
                _pip(venv, want, log, version, mode="w")
        else:
            if venv.exists():
                shutil.rmtree(venv)
            with open(log, "w") as fh:
                cmd = [sys.executable, "-m", "venv", str(venv)]
                fh.write(f"$ {' '.join(cmd)}\n")
                fh.flush()
                rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                    env=_clean_environ()).returncode
            if rc != 0:
                raise HarnessError(f"creating {venv} failed (exit {rc}); log {log}:\n{_tail(log)}")
            _pip(venv, want, log, version)
        if not _airflow_version_ok(venv, version):
            raise HarnessError(f"Airflow {version} installed in {venv} but `airflow version` "
                               f"does not work; log {log}:\n{_tail(log)}")
        marker.write_text(" ".join(want) + "\n")
        INSTALL_SECONDS[version] = round(time.monotonic() - t, 1)
        _VERIFIED.add(venv)
        return venv


INSTALL_SECONDS: dict[str, float] = {}      # installs (or adoptions) done by this process


# --------------------------------------------------------------------------- DAG specs

@dataclass(frozen=True)
class DagSpec:
    """One generated DAG. Tasks: `fail` -> a task that raises; `sleep`/`outlets` -> a Python
    task (sleeps that many seconds, emits the assets); otherwise one EmptyOperator.

    `schedule`: None, a cron expression or preset ("@daily"), or a list of asset names (the
    DAG is then asset-triggered: AF3 `[Asset(name)]`, AF2 `[Dataset(name)]`).
    `import_error`: the DAG is registered, then its file is broken (has_import_errors, and an
    entry in importErrors). `stale`: registered, then its file is deleted (AF3 is_stale,
    AF2 is_active false). `paused_at_creation` None keeps Airflow's default (paused).
    """

    dag_id: str
    tags: tuple[str, ...] = ()
    owner: str = "airflow"
    schedule: str | tuple[str, ...] | None = None
    fail: bool = False
    sleep: float = 0.0
    import_error: bool = False
    stale: bool = False
    outlets: tuple[str, ...] = ()
    inlets: tuple[str, ...] = ()
    start_date: str = DEFAULT_START
    catchup: bool = False
    max_active_runs: int | None = None
    paused_at_creation: bool | None = None
    max_consecutive_failed_dag_runs: int | None = None   # Airflow's auto-pause (2.9+)

    def __post_init__(self) -> None:
        ok = self.dag_id and all(c.isalnum() or c in "_-." for c in self.dag_id)
        if not ok or len(self.dag_id) > 250:
            raise ValueError(f"invalid dag_id {self.dag_id!r}")
        if self.import_error and self.stale:
            raise ValueError(f"{self.dag_id}: a DAG cannot be both stale and an import error")
        for name in ("tags", "outlets", "inlets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.schedule, list):
            object.__setattr__(self, "schedule", tuple(self.schedule))
        if isinstance(self.start_date, datetime):
            start = self.start_date
            if start.tzinfo is None:
                start = start.replace(tzinfo=timezone.utc)
            object.__setattr__(self, "start_date", start.isoformat())

    @property
    def initially_paused(self) -> bool:
        return True if self.paused_at_creation is None else self.paused_at_creation

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        for name in ("tags", "outlets", "inlets"):
            data[name] = list(data[name])
        if isinstance(self.schedule, tuple):
            data["schedule"] = list(self.schedule)
        return data


def _standard_dags() -> tuple[DagSpec, ...]:
    """154 DAGs: 151 healthy, 2 import errors, 1 stale; all paused at creation."""
    crons = [None, "@daily", "0 * * * *", "30 2 * * *", "@hourly"]
    specs: list[DagSpec] = []
    for i in range(60):                     # etl_000..etl_059
        tags = ["etl"] + (["canary"] if i < 3 else []) + (["critical"] if i in (10, 11) else [])
        specs.append(DagSpec(f"etl_{i:03d}", tags=tuple(tags), owner="data-eng",
                             schedule=crons[i % len(crons)]))
    for i in range(45):                     # report_000..report_044
        tags = ["reporting"] + (["canary"] if i < 2 else [])
        owner = "analytics" if i % 9 else "data-eng"
        specs.append(DagSpec(f"report_{i:03d}", tags=tuple(tags), owner=owner,
                             schedule=crons[(i + 1) % len(crons)]))
    for i in range(30):                     # ml_000..ml_029
        tags = ["ml"] + (["etl"] if i % 5 == 0 else []) + (["canary"] if i == 0 else [])
        specs.append(DagSpec(f"ml_{i:03d}", tags=tuple(tags), owner="ml-team",
                             schedule=crons[(i + 2) % len(crons)]))
    for i in range(8):                      # critical_000..critical_007
        specs.append(DagSpec(f"critical_{i:03d}", tags=("critical", "etl"), owner="data-eng",
                             schedule="@daily"))
    specs += [
        DagSpec("etl_fails", tags=("etl",), owner="data-eng", fail=True),
        DagSpec("etl_untagged", owner="data-eng"),
        DagSpec("etl_assets_producer", tags=("etl",), owner="data-eng",
                outlets=("pausectl_orders",)),
        DagSpec("report_assets_consumer", tags=("reporting",), owner="analytics",
                schedule=("pausectl_orders",)),
        DagSpec("report_future", tags=("reporting",), owner="analytics", schedule="@daily",
                start_date="2030-01-01T00:00:00+00:00"),
        DagSpec("ml_limited", tags=("ml",), owner="ml-team", schedule="@daily",
                max_active_runs=1),
        DagSpec("critical_billing", tags=("critical",), owner="data-eng", schedule="@hourly"),
        # Airflow's own default owner, a tag used by no other DAG:
        DagSpec("misc_orphan", tags=("orphan",)),
        DagSpec("etl_broken_a", tags=("etl",), owner="data-eng", import_error=True),
        DagSpec("report_broken_b", tags=("reporting",), owner="analytics", import_error=True),
        DagSpec("ml_stale_old", tags=("ml",), owner="ml-team", stale=True),
    ]
    return tuple(specs)


STANDARD_DAGS: tuple[DagSpec, ...] = _standard_dags()


def make_dags(n: int, prefix_offset: int = 0) -> list[DagSpec]:
    """`n` healthy DAGs with the standard mix of prefixes, tags and owners (for benchmarks)."""
    kinds = [("etl", ("etl",), "data-eng"), ("report", ("reporting",), "analytics"),
             ("ml", ("ml",), "ml-team"), ("critical", ("critical", "etl"), "data-eng")]
    crons = [None, "@daily", "0 * * * *", "@hourly"]
    out = []
    for i in range(prefix_offset, prefix_offset + n):
        prefix, tags, owner = kinds[i % 10 % 4] if i % 10 < 8 else kinds[i % 2]
        if i % 50 == 0:
            tags = tags + ("canary",)
        out.append(DagSpec(f"{prefix}_b{i:05d}", tags=tags, owner=owner,
                           schedule=crons[i % len(crons)]))
    return out


# One per test module that auto-pauses one, so failed runs of one test never count in another's
# (a: test_capabilities_live, b: test_dagmodel, c: tests/compat).
AUTO_PAUSE_DAGS: tuple[DagSpec, ...] = tuple(
    DagSpec(f"etl_autopause_{c}", tags=("etl",), owner="data-eng", fail=True, schedule="@daily",
            max_consecutive_failed_dag_runs=3) for c in "abc")


def matrix_dags(n: int = 200) -> tuple[DagSpec, ...]:
    """What each version-matrix server holds: STANDARD_DAGS, `n` generated DAGs (more than
    three pages of 100 in all) and AUTO_PAUSE_DAGS (failing DAGs with
    max_consecutive_failed_dag_runs=3, for `AirflowServer.auto_pause`)."""
    return (*STANDARD_DAGS, *make_dags(n), *AUTO_PAUSE_DAGS)


_GENERATOR = '''\
# Generated by pausectl's test harness (testkit/harness.py): airflow DAG objects built
# from the JSON spec file next to this one. Do not edit.
import json
import os
import time
from datetime import datetime, timezone

{imports}

_SPEC_FILE = os.path.splitext(os.path.abspath(__file__))[0] + ".json"


def _fail(**_):
    raise RuntimeError("pausectl harness: this task fails on purpose")


def _work(seconds, **_):
    time.sleep(seconds)


def _when(text):
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _schedule(value):
    if isinstance(value, list):
        return [Asset(name) for name in value]
    return value


with open(_SPEC_FILE) as _fh:
    _SPECS = json.load(_fh)

for _s in _SPECS:
    _kwargs = dict(
        dag_id=_s["dag_id"], start_date=_when(_s["start_date"]),
        schedule=_schedule(_s["schedule"]), catchup=_s["catchup"], tags=_s["tags"],
        default_args={{"owner": _s["owner"], "retries": 0}},
    )
    if _s["max_active_runs"] is not None:
        _kwargs["max_active_runs"] = _s["max_active_runs"]
    if _s["paused_at_creation"] is not None:
        _kwargs["is_paused_upon_creation"] = _s["paused_at_creation"]
    if _s.get("max_consecutive_failed_dag_runs") is not None:
        _kwargs["max_consecutive_failed_dag_runs"] = _s["max_consecutive_failed_dag_runs"]
    with DAG(**_kwargs) as _dag:
        _outlets = [Asset(name) for name in _s["outlets"]]
        _inlets = [Asset(name) for name in _s["inlets"]]
        if _s["fail"]:
            PythonOperator(task_id="fail", python_callable=_fail, outlets=_outlets,
                           inlets=_inlets)
        elif _s["sleep"] or _outlets:
            PythonOperator(task_id="work", python_callable=_work, op_args=[_s["sleep"]],
                           outlets=_outlets, inlets=_inlets)
        else:
            EmptyOperator(task_id="noop", inlets=_inlets)
    globals()[_s["dag_id"]] = _dag
'''

_IMPORTS = {
    3: "from airflow.sdk import DAG, Asset\n"
       "from airflow.providers.standard.operators.empty import EmptyOperator\n"
       "from airflow.providers.standard.operators.python import PythonOperator",
    2: "from airflow import DAG\n"
       "from airflow.datasets import Dataset as Asset\n"
       "from airflow.operators.empty import EmptyOperator\n"
       "from airflow.operators.python import PythonOperator",
}
_BREAK = ("\n# pausectl harness: this DAG file was broken on purpose\n"
          "import pausectl_missing_module  # noqa: F401\n")


# Run by AirflowServer.auto_pause in the server's own venv: the scheduler's write, through
# Airflow's ORM and the scheduler's own function (same on 2.9.3 ... 3.3.2; read in dagrun.py).
_AUTO_PAUSE = """\
import json, sys
from datetime import datetime, timedelta, timezone
import airflow
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunType

dag_id, n = sys.argv[1], int(sys.argv[2])
af3 = int(airflow.__version__.split(".")[0]) >= 3
now = datetime.now(timezone.utc).replace(microsecond=0)
with create_session() as session:
    if session.get(DagModel, dag_id) is None:
        raise SystemExit(f"no DAG {dag_id!r} in this Airflow")
    runs = []
    for i in range(n):
        when = now - timedelta(minutes=n - i)       # the newest run comes last
        kw = dict(dag_id=dag_id, run_id=f"scheduled__{when.isoformat()}",
                  run_type=DagRunType.SCHEDULED, state=DagRunState.FAILED, start_date=when,
                  data_interval=(when - timedelta(minutes=1), when))
        if af3:
            kw.update(logical_date=when, run_after=when)
        else:
            kw.update(execution_date=when, external_trigger=False)
        run = DagRun(**kw)
        run.end_date = when
        session.add(run)
        runs.append(run)
    session.flush()
    # what DagRun.update_state does when a run of a DAG with max_consecutive_failed_dag_runs fails
    runs[-1]._check_last_n_dagruns_failed(dag_id, n, session)
    session.flush()
    paused = bool(session.get(DagModel, dag_id).is_paused)
print(json.dumps({"paused": paused, "runs": [r.run_id for r in runs]}))
"""


# --------------------------------------------------------------------------- processes

_LIVE: "set[AirflowServer]" = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_live() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all_live)


def _clean_environ() -> dict[str, str]:
    """os.environ without anything that would leak the caller's Airflow or Python setup."""
    drop = ("AIRFLOW_", "AIRFLOW__", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
            "GUNICORN_CMD_ARGS")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _home_parent() -> str | None:
    """Where temporary AIRFLOW_HOMEs go: $PAUSECTL_AIRFLOW_TMPDIR, else /dev/shm when it is a
    roomy tmpfs (a SQLite commit there takes ~0.3 ms instead of ~15 ms on this disk; AF2
    commits ~9 times per DAG when registering), else the default temp dir."""
    chosen = os.environ.get("PAUSECTL_AIRFLOW_TMPDIR")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return chosen
    with contextlib.suppress(OSError):
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= 2 << 30 and os.access("/dev/shm", os.W_OK):
            return "/dev/shm"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """All live descendants of pid (from /proc), including ones that left its process group."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_tree(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None and not _descendants(proc.pid):
        return
    pids = [proc.pid, *_descendants(proc.pid)]
    pgids = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            pgids.add(os.getpgid(pid))
    for pgid in pgids:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGTERM)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()
        if not any(_alive(pid) for pid in pids):
            break
        time.sleep(0.1)
    for pid in [*pids, *_descendants(proc.pid)]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pgid in pgids:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --------------------------------------------------------------------------- the server

class AirflowServer:
    """A real Airflow (SQLite, 127.0.0.1) in a temporary AIRFLOW_HOME.

    After `start()`: `url` (http://127.0.0.1:PORT), `api_version` ("v2" | "v1"), `api_url`,
    `username`, `password`, `home`, `env` (for the CLI), `timings` (seconds per phase).
    """

    def __init__(self, major: int | None = None, dags: Iterable[DagSpec] = (),
                 root: Path | None = None, scheduler: bool = False, *,
                 version: str | None = None, dag_processor: bool | None = None,
                 jwt_expiration_time: int | None = None, jwt_leeway: int | None = None,
                 workers: int = 1, port: int | None = None,
                 extra_env: dict[str, str] | None = None, keep_home: bool | None = None,
                 username: str = "admin", password: str = "admin"):
        # `version` picks any matrix version; `major` alone its default (3.3.2 / 2.11.2)
        self.version = resolve_version(version if version is not None else
                                       3 if major is None else major)
        self.major = int(self.version.split(".")[0])
        if major is not None and major != self.major:
            raise ValueError(f"Airflow {self.version} is not major version {major}")
        self.api_version = "v2" if self.major == 3 else "v1"
        self.root = Path(root or os.environ.get("PAUSECTL_AIRFLOW_ROOT") or Path.cwd()).resolve()
        self.scheduler = scheduler
        # AF3: the scheduler never parses files; a dag-processor picks up changed files.
        self.dag_processor = ((scheduler and self.major == 3) if dag_processor is None
                              else dag_processor)
        self.jwt_expiration_time = jwt_expiration_time
        self.jwt_leeway = jwt_leeway
        self.workers = workers
        self.port = port
        self.extra_env = dict(extra_env or {})
        self.keep_home = (os.environ.get("PAUSECTL_KEEP_AIRFLOW_HOME") == "1"
                          if keep_home is None else keep_home)
        self.username = username
        self.password = password
        self.specs: dict[str, DagSpec] = {}
        self._pending = list(dags)
        self._file_seq = 0
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self.venv: Path | None = None
        self.home: Path | None = None
        self.env: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self.started = False

    # ---- properties
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/{self.api_version}"

    @property
    def dags_folder(self) -> Path:
        assert self.home is not None
        return self.home / "dags"

    @property
    def db_path(self) -> Path:
        assert self.home is not None
        return self.home / "airflow.db"

    @property
    def logs(self) -> Path:
        assert self.home is not None
        return self.home / "harness-logs"

    def __repr__(self) -> str:
        return f"<AirflowServer {self.version} {self.url if self.port else '(not started)'}>"

    # ---- lifecycle
    def __enter__(self) -> "AirflowServer":
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "AirflowServer":
        """Install (if needed), migrate, write and register the DAGs, start and wait."""
        try:
            self.prepare()
            self.launch()
            self.wait_ready()
        except BaseException as exc:
            saved = self._save_logs()
            self.stop()
            if saved and isinstance(exc, HarnessError):
                exc.args = (f"{exc.args[0]}\n(all logs kept in {saved})",)
            raise
        return self

    def _save_logs(self) -> Path | None:
        """Copy harness-logs out of the home (which stop() deletes) for a post-mortem/CI."""
        if self.home is None or not self.logs.exists() or self.keep_home:
            return None
        dest = self.root / ".airflow" / "failed-logs" / self.home.name
        with contextlib.suppress(OSError):
            shutil.copytree(self.logs, dest, dirs_exist_ok=True)
            return dest
        return None

    def prepare(self) -> None:
        """Everything before the long-running processes: venv, home, db, users, DAGs."""
        t = time.monotonic()
        self.venv = ensure_venv(self.version, self.root)
        self.timings["venv"] = round(time.monotonic() - t, 2)
        self.home = Path(tempfile.mkdtemp(prefix=f"pausectl-af{self.version}-",
                                          dir=_home_parent()))
        self.dags_folder.mkdir()
        self.logs.mkdir()
        with _LIVE_LOCK:
            _LIVE.add(self)
        if self.port is None:
            self.port = free_port()
        self.env = self._build_env()
        (self.home / "passwords.json").write_text(json.dumps({self.username: self.password}))
        t = time.monotonic()
        self._init_db()
        self.timings["db"] = round(time.monotonic() - t, 2)
        pending, self._pending = self._pending, []
        t = time.monotonic()
        self.add_dags(pending)
        self.timings["dags"] = round(time.monotonic() - t, 2)

    def _init_db(self) -> None:
        """`airflow db migrate` (+ the AF2 admin user), done once per venv and credentials:
        later servers copy that freshly migrated SQLite file (saves 3-10 s each)."""
        assert self.venv is not None
        key = hashlib.sha256(f"{self.username}\0{self.password}".encode()).hexdigest()[:12]
        template = self.venv.parent / f"db-{self.version}-{key}.sqlite"
        with open(self.venv.parent / f"db-{self.version}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            installed = (self.venv / MARKER).stat().st_mtime
            if template.exists() and template.stat().st_mtime >= installed:
                shutil.copyfile(template, self.db_path)
                return
            t = time.monotonic()
            self.airflow("db", "migrate", log="migrate")
            self.timings["migrate"] = round(time.monotonic() - t, 2)
            if self.major == 2:
                t = time.monotonic()
                self.airflow("users", "create", "-u", self.username, "-p", self.password,
                             "-r", "Admin", "-f", "Pause", "-l", "Ctl", "-e",
                             "admin@example.com", log="users")
                self.timings["users"] = round(time.monotonic() - t, 2)
            tmp = template.with_suffix(".tmp")
            shutil.copyfile(self.db_path, tmp)
            os.replace(tmp, template)

    def launch(self) -> None:
        """Start the server (and scheduler/dag-processor) processes; does not wait."""
        self._ready_t0 = time.monotonic()
        if self.major == 3:
            cmd = ["api-server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(self.workers)]
        else:
            cmd = ["webserver", "--hostname", "127.0.0.1", "--port", str(self.port),
                   "-w", str(self.workers)]
        self._spawn("server", cmd)
        if self.scheduler:
            self._spawn("scheduler", ["scheduler", "--skip-serve-logs"])
        if self.dag_processor:
            self._spawn("dag-processor", ["dag-processor"])

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll health (and auth) until the server answers; raise with the log tail if not."""
        health = f"{self.url}/api/v2/monitor/health" if self.major == 3 else f"{self.url}/health"
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise HarnessError(
                        f"Airflow {self.version} {name} exited with {proc.returncode} during "
                        f"startup; {self.logs / (name + '.log')}:\n"
                        f"{_tail(self.logs / (name + '.log'))}")
            try:
                status, body = _http("GET", health, timeout=5)
                if status == 200:
                    if not self.scheduler:
                        break
                    state = (json.loads(body).get("scheduler") or {}).get("status")
                    if state == "healthy":
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"Airflow {self.version} not ready after {timeout:.0f}s; "
                                   f"{self.logs / 'server.log'}:\n"
                                   f"{_tail(self.logs / 'server.log')}")
            time.sleep(0.25)
        self.auth_headers()     # proves the credentials work
        self.timings["ready"] = round(time.monotonic() - self._ready_t0, 2)
        self.started = True

    def stop(self) -> None:
        """Kill every process this server started (whole trees), then drop the home."""
        procs, self._procs = self._procs, {}
        for proc in procs.values():
            _kill_tree(proc)
        self.started = False
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self.home and self.home.exists() and not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    # ---- environment and CLI
    def _build_env(self) -> dict[str, str]:
        assert self.home is not None and self.venv is not None
        env = _clean_environ()
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "VIRTUAL_ENV": str(self.venv),
            "PATH": f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # gunicorn >= 23 opens a control socket in ~/.gunicorn shared by every server
            "GUNICORN_CMD_ARGS": "--no-control-socket",
        })
        if self.major == 3:
            env.update({
                "AIRFLOW__CORE__AUTH_MANAGER":
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager"
                    ".SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE":
                    str(self.home / "passwords.json"),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "600",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            })
            if self.jwt_expiration_time is not None:
                env["AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME"] = str(self.jwt_expiration_time)
                # the default leeway (10 s) would keep an expired token valid that long
                env["AIRFLOW__API_AUTH__JWT_LEEWAY"] = str(self.jwt_leeway or 0)
            elif self.jwt_leeway is not None:
                env["AIRFLOW__API_AUTH__JWT_LEEWAY"] = str(self.jwt_leeway)
        else:
            env.update({
                "AIRFLOW__API__AUTH_BACKENDS":
                    "airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session",
                "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "600",
                "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",   # the only one on SQLite
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
            })
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, check: bool = True, timeout: float = 900,
                log: str | None = None, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess:
        """Run the Airflow CLI of this venv against this home. Output is captured (and, with
        `log`, also written to harness-logs/<log>.log). Raises HarnessError on failure."""
        assert self.venv is not None, "call start() first"
        cmd = [str(self.venv / "bin" / "airflow"), *args]
        out = subprocess.run(cmd, env={**self.env, **(env or {})}, capture_output=True,
                             text=True, timeout=timeout, cwd=self.home)
        if log:
            (self.logs / f"{log}.log").write_text(out.stdout + out.stderr)
        if check and out.returncode != 0:
            text = (out.stdout + out.stderr).splitlines()
            raise HarnessError(f"`airflow {' '.join(args)}` failed ({out.returncode}):\n"
                               + "\n".join(text[-40:]))
        return out

    def _spawn(self, name: str, args: list[str]) -> None:
        assert self.venv is not None
        log = open(self.logs / f"{name}.log", "ab")
        try:
            self._procs[name] = subprocess.Popen(
                [str(self.venv / "bin" / "airflow"), *args], env=self.env, cwd=self.home,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            log.close()

    # ---- DAGs
    def add_dags(self, specs: Iterable[DagSpec]) -> None:
        """Write DAG files for these specs and register them, as Airflow would.

        Only healthy DAGs: one `airflow dags reserialize`. With stale/import-error specs: their
        files are registered first (a small reserialize), then deleted/broken while the
        healthy files are written, and one full parsing loop registers the healthy DAGs and
        lets Airflow notice the stale and broken ones (reserialize alone does not, measured).
        """
        specs = list(specs)
        if not specs:
            return
        if self.home is None:          # before start(): written during prepare()
            self._pending.extend(specs)
            return
        with self._lock:
            seen = set(self.specs)
            for spec in specs:
                if spec.dag_id in seen:
                    raise ValueError(f"duplicate dag_id {spec.dag_id!r}")
                seen.add(spec.dag_id)
            special = [s for s in specs if s.stale or s.import_error]
            if special and self.major == 2 and "scheduler" in self._procs:
                raise HarnessError("AF2: adding stale/import-error DAGs while the scheduler "
                                   "runs is not supported (SQLite allows one scheduler)")
            normal = [s for s in specs if not (s.stale or s.import_error)]
            for spec in special:
                self._write_file(spec.dag_id, [spec])
            if special:
                self._reserialize(special)
                for spec in special:
                    path = self.dags_folder / f"{spec.dag_id}.py"
                    if spec.stale:
                        path.unlink()
                        (self.dags_folder / f"{spec.dag_id}.json").unlink()
                    else:
                        with open(path, "a") as fh:
                            fh.write(_BREAK)
            for start in range(0, len(normal), DAGS_PER_FILE):
                self._file_seq += 1
                self._write_file(f"pausectl_dags_{self._file_seq:04d}",
                                 normal[start:start + DAGS_PER_FILE])
            if special:
                t = time.monotonic()
                self._parse_once(specs)
                self.timings["parse_once"] = round(time.monotonic() - t, 2)
                bad = self._problems(specs)
                if bad:
                    raise HarnessError(
                        f"after one parsing loop: {', '.join(bad[:5])}"
                        f"{' ...' if len(bad) > 5 else ''}; {self.logs / 'parse-once.log'}:\n"
                        f"{_tail(self.logs / 'parse-once.log')}")
            elif normal:
                self._reserialize(normal)
            for spec in specs:
                self.specs[spec.dag_id] = spec

    def _reserialize(self, specs: Sequence[DagSpec]) -> None:
        t = time.monotonic()
        self.airflow("dags", "reserialize", log="reserialize",
                     env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"})  # ~25% faster
        self.timings["reserialize"] = round(time.monotonic() - t, 2)
        missing = [p for p in self._problems(specs) if p.endswith("not registered")]
        if missing:
            raise HarnessError(f"{len(missing)} DAG(s) not registered after reserialize "
                               f"(first: {missing[:3]}); {self.logs / 'reserialize.log'}:\n"
                               f"{_tail(self.logs / 'reserialize.log')}")

    def _write_file(self, stem: str, specs: Sequence[DagSpec]) -> None:
        (self.dags_folder / f"{stem}.json").write_text(
            json.dumps([s.to_json() for s in specs], indent=0))
        (self.dags_folder / f"{stem}.py").write_text(
            _GENERATOR.format(imports=_IMPORTS[self.major]))

    def _parse_once(self, specs: Sequence[DagSpec]) -> None:
        """One full parsing loop: registers new files, marks DAGs of deleted files stale and
        records import errors."""
        if self.major == 3:
            self.airflow("dag-processor", "--num-runs", "1", log="parse-once")
            return
        # AF2 on SQLite has no standalone dag-processor, and `scheduler --num-runs 1` may exit
        # before its parser has seen every file: run a scheduler (job scheduling off, so it
        # never creates runs) until the DB shows the result, then stop it.
        assert self.venv is not None
        log = open(self.logs / "parse-once.log", "ab")
        try:
            proc = subprocess.Popen(
                [str(self.venv / "bin" / "airflow"), "scheduler", "--skip-serve-logs"],
                env={**self.env, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"},
                cwd=self.home, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            log.close()
        try:
            deadline = time.monotonic() + max(READY_TIMEOUT, len(specs) * 0.5)
            while self._problems(specs):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        finally:
            _kill_tree(proc)

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Read the metadata DB directly (SQLite), e.g. to check what the API reports."""
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            return db.execute(sql, params).fetchall()

    def _problems(self, specs: Sequence[DagSpec]) -> list[str]:
        """What the DB does not (yet) show about these specs; empty when all is as meant."""
        active = "NOT is_stale" if self.major == 3 else "is_active"
        rows = {r[0]: r[1:] for r in self.query(
            f"SELECT dag_id, {active}, has_import_errors FROM dag")}
        bad = []
        for spec in specs:
            if spec.dag_id not in rows:
                bad.append(f"{spec.dag_id} not registered")
                continue
            is_active, has_errors = rows[spec.dag_id]
            if spec.stale and is_active:
                bad.append(f"{spec.dag_id} not stale")
            if spec.import_error and not has_errors:
                bad.append(f"{spec.dag_id} has no import error")
        return bad

    def reset(self, paused: bool | None = None, variables: bool = True,
              events: bool = False) -> None:
        """Put the pause state back to each DAG's creation default (or `paused` for all) and
        delete every Airflow Variable: for tests sharing one session-wide server. `events`:
        also empty the event log (each plan reads up to its newest 1,000 pause events, which
        on AF2 costs a request per 100; a long shared session would otherwise pay for every
        earlier test's events)."""
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            with db:
                if paused is None:
                    db.execute("UPDATE dag SET is_paused = 1")
                    opened = [d for d, s in self.specs.items() if not s.initially_paused]
                    db.executemany("UPDATE dag SET is_paused = 0 WHERE dag_id = ?",
                                   [(d,) for d in opened])
                else:
                    db.execute("UPDATE dag SET is_paused = ?", (int(paused),))
                if variables:
                    db.execute("DELETE FROM variable")
                if events:
                    db.execute("DELETE FROM log")

    # ---- what other actors do (for drift attribution tests)
    def auto_pause(self, dag_id: str, failed_runs: int = 3) -> dict:
        """Airflow's own auto-pause, exactly as its scheduler writes it: `failed_runs` failed
        scheduled DagRuns are added through Airflow's ORM, then the scheduler's own
        `DagRun._check_last_n_dagruns_failed` (what `DagRun.update_state` calls when a run of
        a DAG with `max_consecutive_failed_dag_runs` fails, 2.9 through 3.3) sets is_paused
        and writes `Log(event="paused", owner="scheduler", extra="[('dag_id', ...), ...]")`.
        Runs in this version's venv; returns {"paused": bool, "runs": [run_id, ...]}."""
        if failed_runs < 1:
            raise ValueError("failed_runs must be at least 1")
        out = self.python(_AUTO_PAUSE, dag_id, str(failed_runs), log="auto-pause")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def cli_pause(self, dag_id: str, paused: bool = True, *, regex: bool = False
                  ) -> subprocess.CompletedProcess:
        """`airflow dags pause|unpause DAG_ID -y` (with `--treat-dag-id-as-regex`: DAG_ID is a
        regex, and Airflow logs the regex in the event's dag_id column). Every matrix version
        has both flags (read in each cli_config.py)."""
        args = ["dags", "pause" if paused else "unpause", dag_id, "-y"]
        if regex:
            args.append("--treat-dag-id-as-regex")
        return self.airflow(*args, log="cli-pause")

    def api_patch(self, dag_id: str, paused: bool) -> dict:
        """PATCH /dags/{dag_id} as the admin user (what the UI toggle sends on AF3)."""
        status, body = _http("PATCH", f"{self.api_url}/dags/{dag_id}", timeout=60,
                             data={"is_paused": paused}, headers=self.auth_headers())
        if status != 200:
            raise HarnessError(f"PATCH /dags/{dag_id} -> {status}: {body[:300]!r}")
        return json.loads(body)

    def ui_toggle(self, dag_id: str, paused: bool) -> None:
        """The pause toggle of the UI. AF3's UI sends PATCH /api/v2/dags/{id} (= api_patch).
        AF2's posts the form endpoint `/paused?dag_id=..&is_paused=<state BEFORE the toggle>`
        in a logged-in session with its CSRF token, and Airflow logs it as event `paused`
        (owner = the user), the name the scheduler's auto-pause uses too."""
        if self.major == 3:
            self.api_patch(dag_id, paused)
            return
        jar = http.cookiejar.CookieJar()
        web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

        def csrf(page: str, pattern: str) -> str:
            m = re.search(pattern, page)
            if not m:
                raise HarnessError(f"AF2 UI: no CSRF token in {page[:200]!r}")
            return m.group(1)

        form = web.open(f"{self.url}/login/", timeout=60).read().decode()
        token = csrf(form, r'name="csrf_token"[^>]*value="([^"]+)"')
        web.open(f"{self.url}/login/", urllib.parse.urlencode(
            {"username": self.username, "password": self.password, "csrf_token": token}
        ).encode(), timeout=60).read()
        home = web.open(f"{self.url}/home", timeout=60).read().decode()
        meta = csrf(home, r"var csrfToken = '([^']+)'")      # main.html, as the UI's JS sends it
        query = urllib.parse.urlencode({"dag_id": dag_id, "is_paused": str(not paused).lower()})
        req = urllib.request.Request(f"{self.url}/paused?{query}", data=b"", method="POST",
                                     headers={"X-CSRFToken": meta, "Referer": f"{self.url}/home"})
        with web.open(req, timeout=60) as resp:
            if resp.status != 200:
                raise HarnessError(f"AF2 UI POST /paused -> {resp.status}")

    def bulk_patch(self, pattern: str, paused: bool) -> dict:
        """One bulk PATCH /dags?dag_id_pattern=PATTERN (v1 needs update_mask). Like any API
        user, it may change only one page of the matches (AF2, and AF3 3.0.0-3.2.1)."""
        query = urllib.parse.urlencode({"dag_id_pattern": pattern, "update_mask": "is_paused"}
                                       if self.major == 2 else {"dag_id_pattern": pattern})
        status, body = _http("PATCH", f"{self.api_url}/dags?{query}", timeout=60,
                             data={"is_paused": paused}, headers=self.auth_headers())
        if status != 200:
            raise HarnessError(f"PATCH /dags?{query} -> {status}: {body[:300]!r}")
        return json.loads(body)

    def python(self, code: str, *args: str, log: str | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a Python snippet with this version's interpreter against this home (Airflow's
        ORM reaches this server's DB). Raises HarnessError with the output tail on failure."""
        assert self.venv is not None, "call start() first"
        out = subprocess.run([str(self.venv / "bin" / "python"), "-c", code, *args],
                             env={**self.env, "PYTHONWARNINGS": "ignore"}, capture_output=True,
                             text=True, timeout=timeout, cwd=self.home)
        if log:
            (self.logs / f"{log}.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise HarnessError(f"python snippet failed ({out.returncode}):\n"
                               + "\n".join((out.stdout + out.stderr).splitlines()[-30:]))
        return out

    # ---- auth
    def token(self) -> str:
        """A fresh JWT from POST /auth/token (AF3 only)."""
        if self.major != 3:
            raise HarnessError("tokens are an Airflow 3 feature; AF2 uses basic auth")
        status, body = _http("POST", f"{self.url}/auth/token", timeout=30,
                             data={"username": self.username, "password": self.password})
        if status not in (200, 201):
            raise HarnessError(f"POST /auth/token -> {status}: {body[:300]!r}")
        return json.loads(body)["access_token"]

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate as the admin user (Bearer for AF3, Basic for AF2)."""
        if self.major == 3:
            return {"Authorization": f"Bearer {self.token()}"}
        raw = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {raw}"}
        status, body = _http("GET", f"{self.api_url}/dags?limit=1", headers=headers,
                             timeout=30)
        if status != 200:
            raise HarnessError(f"basic auth check GET /api/v1/dags -> {status}: {body[:300]!r}")
        return headers

    def info(self) -> dict:
        return {"url": self.url, "api_url": self.api_url, "api_version": self.api_version,
                "airflow_version": self.version, "username": self.username,
                "password": self.password, "home": str(self.home),
                "dags": len(self.specs), "timings": self.timings}


def _http(method: str, url: str, *, timeout: float, data: dict | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_all(servers: Sequence[AirflowServer]) -> list[AirflowServer]:
    """Start several servers concurrently (e.g. AF2 and AF3); on any failure stop them all
    and raise the first error."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        futures = [pool.submit(s.start) for s in servers]
        errors = [f.exception() for f in futures]
    if any(errors):
        for server in servers:
            server.stop()
        raise next(e for e in errors if e)
    return list(servers)


# --------------------------------------------------------------------------- CLI

def _main(argv: list[str] | None = None) -> int:
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


if __name__ == "__main__":
    sys.exit(_main())
