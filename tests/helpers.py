"""Test helpers: build a small state repo in a temp dir, run the real CLI, hash a tree.

The base repo (BASE_FILES) is deliberately small and warning-free, so a test that mutates one
file sees exactly the error it caused. Line numbers in tests refer to these texts: keep them
stable, or update the tests that name lines.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_STATE = REPO / "state"

# --- the base state repo -------------------------------------------------------------------

PAUSECTL_YAML = """\
environments:
  prod:
    backend: {type: snapshot, path: snapshots/prod.json}
  staging:
    backend: {type: snapshot, path: snapshots/staging.json}
    promote_to: prod
precedence:
  layers: [emergency, dag, group, defaults]
  tie: pause
safety:
  max_changes: 50
  protect: ["critical_*"]
"""

PROD_YAML = """\
environment: prod
include: [common.yaml]
defaults: {unmanaged: report}
dags:
  billing_daily:
    paused: true
    reason: "vendor outage"
    owner: team-billing
    until: 2030-01-01T00:00:00Z
groups:
  - name: etl-maintenance
    match: {tags: [etl], dag_id: "etl_*"}
    paused: true
    reason: "warehouse maintenance"
    owner: data-eng
    priority: 10
    windows: [{cron: "0 2 * * SUN", duration: 2h, timezone: Europe/Berlin}]
"""

COMMON_YAML = """\
groups:
  - name: reporting
    match: {dag_id: "report_*"}
    paused: false
    reason: "reports run everywhere"
    owner: analytics
"""

STAGING_YAML = """\
environment: staging
include: [common.yaml]
dags:
  billing_daily:
    paused: false
    reason: "testing the vendor fix"
    owner: team-billing
"""


def dag(dag_id: str, paused: bool = False, tags: Iterable[str] = (), owners: Iterable[str] = (),
        **extra) -> dict:
    d = {"dag_id": dag_id, "is_paused": paused, "tags": list(tags), "owners": list(owners),
         "is_stale": False, "has_import_errors": False}
    d.update(extra)
    return d


def snapshot_json(dags: Iterable[dict], environment: str | None = None) -> str:
    doc: dict = {}
    if environment:
        doc["environment"] = environment
    doc["dags"] = list(dags)
    return json.dumps(doc, indent=1) + "\n"


BASE_DAGS = [
    dag("billing_daily", False, ["billing"], ["team-billing"]),
    dag("etl_orders", False, ["etl"], ["data-eng"]),
    dag("report_daily", True, ["reporting"], ["analytics"]),
]

BASE_FILES: dict[str, str] = {
    "pausectl.yaml": PAUSECTL_YAML,
    "prod.yaml": PROD_YAML,
    "common.yaml": COMMON_YAML,
    "staging.yaml": STAGING_YAML,
    "snapshots/prod.json": snapshot_json(BASE_DAGS, "prod"),
    "snapshots/staging.json": snapshot_json(BASE_DAGS, "staging"),
}


def write_files(root: Path, files: Mapping[str, str | bytes | None]) -> None:
    """Write files under root (str as UTF-8, bytes as is); None deletes the file."""
    for rel, content in files.items():
        p = root / rel
        if content is None:
            if p.exists():
                p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")


def make_state(base: Path, files: Mapping[str, str | bytes | None] | None = None,
               with_base: bool = True) -> Path:
    """Create base/state holding the base repo (unless with_base=False) plus `files`.

    Returns the state directory. Run the CLI with cwd=base so it finds ./state.
    """
    root = base / "state"
    root.mkdir(parents=True, exist_ok=True)
    if with_base:
        write_files(root, BASE_FILES)
    if files:
        write_files(root, files)
    return root


def load(root: Path, env: str, now=None):
    """(Config, EnvState) through the real loaders."""
    from reconciler.state.loader import load_config, load_env
    cfg = load_config(root)
    return cfg, load_env(cfg, env, now=now)


# --- running the CLI -----------------------------------------------------------------------

def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("PAUSECTL_DEBUG", None)
    e.pop("PAUSECTL_STATE", None)
    e["COLUMNS"] = "200"
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return e


def run_cli(args: list[str], cwd: Path, timeout: float = 60,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=cli_env(env),
                          errors="replace")


def run_timed(argv: list[str], cwd: Path | None = None, timeout: float = 60,
              env: Mapping[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run argv; return its result and the CPU seconds of that one process tree (os.wait4).

    Not RUSAGE_CHILDREN deltas: those also count any other child the test process reaps
    meanwhile (a shared Airflow server stopped by a background thread added 60 s once).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise subprocess.TimeoutExpired(argv, timeout)
            time.sleep(0.01)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = [f.read().decode(errors="replace") for f in (out, err)]
    return (subprocess.CompletedProcess(argv, p.returncode, text[0], text[1]),
            ru.ru_utime + ru.ru_stime)


def run_cli_timed(args: list[str], cwd: Path, timeout: float = 60,
                  env: Mapping[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    return run_timed([sys.executable, "-m", "reconciler", *args], cwd, timeout, cli_env(env))


def tree_hash(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root (new, removed and changed files show)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() or p.is_symlink():
            try:
                data = p.read_bytes()
            except OSError:
                data = b"<unreadable>"
            out[str(p.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


LOCATED = re.compile(r"^(?:error: )?(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::(?P<col>\d+))?: "
                     r"(?P<message>\S.*)$")


def parse_located(line: str):
    """Match one `file:line[:col]: message` line (the CLI may prefix it with `error: `)."""
    return LOCATED.match(line)


# ------------------------------------------------------------ a harness server's pause state

def db_states(server) -> dict[str, bool]:
    """Every DAG's is_paused in Airflow's metadata DB (the truth, whatever the API says)."""
    return {d: bool(p) for d, p in server.query("SELECT dag_id, is_paused FROM dag")}


def set_states(server, states: dict[str, bool]) -> None:
    """Set is_paused in the DB directly (a test's starting point, no event logged)."""
    with contextlib.closing(sqlite3.connect(server.db_path, timeout=30)) as db, db:
        db.executemany("UPDATE dag SET is_paused = ? WHERE dag_id = ?",
                       [(int(p), d) for d, p in states.items()])


def api_states(server) -> dict[str, bool]:
    """Every DAG's is_paused as the REST API lists it (offset paging, stale DAGs included)."""
    import httpx
    extra = {"exclude_stale": "false"} if server.major == 3 else {"only_active": "false"}
    out: dict[str, bool] = {}
    with httpx.Client(base_url=server.api_url, headers=server.auth_headers(), timeout=120) as c:
        while True:
            r = c.get("/dags", params={"limit": 100, "offset": len(out), **extra})
            assert r.status_code == 200, r.text
            data = r.json()
            out.update({d["dag_id"]: bool(d["is_paused"]) for d in data["dags"]})
            if not data["dags"] or len(out) >= data["total_entries"]:
                return out


def live_env(server, tmp_path: Path, monkeypatch, state_yaml: str,
             running: Iterable[str] = ()) -> Path:
    """A session server reset, pausectl's environment pointed at it (credentials, journal dir
    tmp_path/journals), a state repo whose env `live` is that server (one batch), and the DAGs
    `running` unpaused through REST (an event Airflow logs, unlike set_states)."""
    import httpx
    from safe_apply_support import state_repo
    server.reset()
    monkeypatch.setenv("AF_USER", server.username)
    monkeypatch.setenv("AF_PASS", server.password)
    monkeypatch.setenv("PAUSECTL_JOURNAL_DIR", str(tmp_path / "journals"))
    root = state_repo(tmp_path, server.url, state_yaml, "{batches: ['100%']}")
    with httpx.Client(base_url=server.api_url, headers=server.auth_headers(), timeout=60) as c:
        for dag_id in running:
            r = c.patch(f"/dags/{dag_id}", json={"is_paused": False})
            assert r.status_code == 200, r.text
    return root


def main_captured(cwd, args, capsys, monkeypatch) -> tuple[int, str, str]:
    """pausectl's main() in this process from `cwd`, output read from pytest's capsys:
    (exit code, stdout, stderr)."""
    from reconciler.cli.main import main
    monkeypatch.chdir(cwd)
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def run_inprocess(args: list[str], cwd: Path, env: dict | None = None):
    """pausectl's main() in this process, as the CLI runs it: (returncode, stdout, stderr)."""
    import contextlib
    import io
    from reconciler.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in [*(env or {}), "PAUSECTL_DEBUG", "PAUSECTL_STATE"]}
    old = os.getcwd()
    code = 0
    try:
        os.environ.pop("PAUSECTL_DEBUG", None)
        os.environ.pop("PAUSECTL_STATE", None)
        os.environ.update(env or {})
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["pausectl", *args], code, out.getvalue(), err.getvalue())


class Repo:
    """A git repo in a temp dir holding ./state; commits with chosen authors and dates."""

    def __init__(self, base: Path, files: dict | None = None):
        self.path = base
        base.mkdir(parents=True, exist_ok=True)
        self.state = base / "state"
        self.n = 0
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Test Runner")
        self.git("config", "user.email", "runner@example.com")
        self.git("config", "commit.gpgsign", "false")
        write_files(self.state, {**BASE_FILES, **(files or {})})
        self.commit("initial state", author="Alice Admin <alice@example.com>")

    def git(self, *args: str, env: dict | None = None) -> str:
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True,
                              text=True, env=e).stdout

    def write(self, files: dict) -> None:
        write_files(self.state, files)

    def commit(self, message: str, files: dict | None = None,
               author: str = "Bob Builder <bob@example.com>") -> str:
        if files:
            self.write(files)
        self.n += 1
        date = f"2026-01-{self.n:02d}T10:00:00+00:00"
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, f"--author={author}",
                 env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
        return self.git("rev-parse", "HEAD").strip()

    def read(self, rel: str) -> str:
        return (self.state / rel).read_text(encoding="utf-8")

    def cli(self, *args: str, env: dict | None = None, subprocess: bool = False):
        """Run pausectl here. In-process by default (fast: no interpreter start per call);
        `subprocess=True` runs the real console entry point in a child process."""
        if subprocess:
            return run_cli(list(args), cwd=self.path, env=env)
        return run_inprocess(list(args), cwd=self.path, env=env)


def rand_dag_id(rng, alpha: str, max_len: int) -> str:
    """A random dag_id of 1..max_len characters from `alpha` (selector fuzz tests)."""
    return "".join(rng.choice(alpha) for _ in range(rng.randint(1, max_len)))


def rand_glob(rng, alpha: str, star_below: float = 0.7) -> str:
    """A random fnmatch glob over `alpha`: literals, `*` (drawn in [0.5, star_below)), `?`
    and (negated) classes; the fuzz tests' shared generator."""
    parts = []
    for _ in range(rng.randint(1, 5)):
        k = rng.random()
        if k < 0.5:
            parts.append(rng.choice(alpha))
        elif k < star_below:
            parts.append("*")
        elif k < 0.85:
            parts.append("?")
        else:
            body = "".join(rng.sample(alpha, rng.randint(1, 3)))
            parts.append("[" + ("!" if rng.random() < 0.3 else "") + body + "]")
    return "".join(parts)
