"""`AirflowServer`: one real Airflow (SQLite, 127.0.0.1) in a temporary AIRFLOW_HOME, from its
venv to a ready API server; DAG registration and other actors' writes are its mixins."""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

from testkit.actors import OtherActors
from testkit.airflow_env import airflow_env
from testkit.dags import DagSpec
from testkit.procs import (READY_TIMEOUT, HarnessError, _home_parent, _http, _tail, free_port,
                           kill_trees)
from testkit.registry import DagRegistry
from testkit.versions import MARKER, ensure_venv, resolve_version

_LIVE: "set[AirflowServer]" = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_live() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all_live)


class AirflowServer(DagRegistry, OtherActors):
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

    def start(self, attempts: int = 1) -> "AirflowServer":
        """Install (if needed), migrate, write and register the DAGs, start and wait.
        `attempts`: a HarnessError (not ready, DAGs not registered in time) starts over in a
        new home; the session-wide servers use 2, as a box busy installing venvs once stalled
        AF2's parser past every deadline (an install failure is not retried)."""
        pending = list(self._pending)
        for attempt in range(1, attempts + 1):
            try:
                self.prepare()
                self.launch()
                self.wait_ready()
                return self
            except BaseException as exc:
                saved = self._save_logs()
                self.stop()
                if saved and isinstance(exc, HarnessError):
                    exc.args = (f"{exc.args[0]}\n(all logs kept in {saved})",)
                if attempt == attempts or not isinstance(exc, HarnessError):
                    raise
                print(f"harness: Airflow {self.version} start {attempt} of {attempts} failed, "
                      f"starting over: {str(exc).splitlines()[0]}", file=sys.stderr)
                self.specs, self._pending, self._file_seq = {}, list(pending), 0
                self.home, self.timings = None, {}
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
        # the home is deleted next, so nothing needs a graceful exit: AF2's webserver takes the
        # whole grace (10 s measured) and every stop of a test's server is waited for
        kill_trees(list(procs.values()), grace=10.0 if self.keep_home else 2.0)
        self.started = False
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self.home and self.home.exists() and not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    # ---- environment and CLI
    def _build_env(self) -> dict[str, str]:
        return airflow_env(self)

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

