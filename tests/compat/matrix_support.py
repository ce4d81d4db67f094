"""Helpers for the version-matrix tests (tests/compat/test_matrix.py).

A state repo whose one environment `live` points at a matrix server (REST API, `api: auto`, so
the backend picks v1/v2 and its capabilities from the server's /version), pausectl run through
its real CLI (in this process, or as a subprocess where it must be killed or raced), and the
truth read from Airflow itself: every DAG's is_paused from the metadata DB and from the REST
listing, and the event log rows written since a point in time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from helpers import api_states, db_states

REPO = Path(__file__).resolve().parents[2]
ENV = "live"
CREDS = {"AF_USER": "admin", "AF_PASS": "admin"}
TIMINGS: dict[str, dict[str, float]] = {}     # version -> scenario -> seconds (printed at end)


def write_state(base: Path, server, env_yaml: str, rollout: str,
                extra: str = "") -> Path:
    """base/state with pausectl.yaml (env `live` -> this server) and live.yaml."""
    root = base / "state"
    root.mkdir(parents=True, exist_ok=True)
    (root / "pausectl.yaml").write_text(
        "environments:\n"
        f"  {ENV}:\n"
        f"    backend: {{type: airflow-api, url: '{server.url}', auth: password-token,\n"
        "              username_env: AF_USER, password_env: AF_PASS}\n"
        f"rollout: {rollout}\n"
        "safety: {max_changes: 5000, protect: []}\n" + extra)
    (root / f"{ENV}.yaml").write_text(env_yaml)
    return root


def cli_env(journal_dir: Path, **extra: str) -> dict[str, str]:
    e = dict(os.environ)
    for k in ("PAUSECTL_TEST_KILLPOINT", "PAUSECTL_STATE", "PAUSECTL_DEBUG"):
        e.pop(k, None)
    e.update(CREDS, PAUSECTL_JOURNAL_DIR=str(journal_dir), COLUMNS="200",
             PYTHONPATH=str(REPO) + os.pathsep + e.get("PYTHONPATH", ""))
    e.update(extra)
    return e


def run_sub(args: list[str], root: Path, journal_dir: Path, timeout: float = 600,
            **extra: str) -> subprocess.CompletedProcess:
    """`pausectl ARGS` in its own process (to SIGKILL it, or to race two of them)."""
    return subprocess.run([sys.executable, "-m", "reconciler", *args, "--state", str(root)],
                          env=cli_env(journal_dir, **extra), capture_output=True, text=True,
                          timeout=timeout)


class Cli:
    """`pausectl ARGS` in this process (the same entry point, no interpreter start-up)."""

    def __init__(self, monkeypatch, capsys, root: Path, journal_dir: Path):
        self.capsys, self.root = capsys, root
        for k, v in CREDS.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("PAUSECTL_JOURNAL_DIR", str(journal_dir))
        monkeypatch.delenv("PAUSECTL_STATE", raising=False)
        monkeypatch.delenv("PAUSECTL_TEST_KILLPOINT", raising=False)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from reconciler.cli.main import main
        self.capsys.readouterr()
        code = 0
        try:
            main([*args, "--state", str(self.root)])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> dict:
        code, out, err = self(*args, "--format", "json")
        assert code in (0, 2), f"pausectl {' '.join(args)}: exit {code}\n{out}\n{err}"
        return json.loads(out)


# ------------------------------------------------------------------ Airflow's own truth




def assert_states(server, want: dict[str, bool], what: str) -> None:
    """Every DAG, in the DB and through the API listing, is exactly as wanted."""
    for name, got in (("database", db_states(server)), ("API listing", api_states(server))):
        assert set(got) == set(want), f"{what}: {name} lists other DAGs"
        wrong = {d: (got[d], want[d]) for d in want if got[d] != want[d]}
        assert not wrong, (f"{what}: {len(wrong)} DAG(s) wrong in the {name} "
                           f"(got, want): {dict(sorted(wrong.items())[:10])}")


def healthy(server) -> list[str]:
    """DAGs a plan may flip: registered, not stale, no import error (from the DB)."""
    stale = "is_stale" if server.major == 3 else "NOT is_active"
    return sorted(r[0] for r in server.query(
        f"SELECT dag_id FROM dag WHERE NOT ({stale}) AND NOT has_import_errors"))


def db_now(server) -> str:
    return server.query("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")[0][0]


def events_since(server, since: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """(event, dag_id, owner, extra) rows of Airflow's event log written since `since`."""
    return server.query("SELECT event, dag_id, owner, extra FROM log WHERE dttm >= ? "
                        "ORDER BY id", (since,))


def pause_events(server, since: str) -> dict[str, int]:
    """How many single / bulk pause-state writes the event log shows since `since`."""
    single = {"patch_dag", "api.patch_dag", "ui.patch_dag"}
    bulk = {"patch_dags", "api.patch_dags", "ui.patch_dags"}
    out = {"single": 0, "bulk": 0}
    for event, *_ in events_since(server, since):
        if event in single:
            out["single"] += 1
        elif event in bulk:
            out["bulk"] += 1
    return out


def lock_vars(server) -> list:
    return server.query("SELECT key FROM variable WHERE key LIKE 'pausectl.%'")


class timed:
    """with timed(server, "apply"): ... records the scenario's seconds for docs/compat.md."""

    def __init__(self, server, scenario: str):
        self.server, self.scenario = server, scenario

    def __enter__(self):
        TIMINGS.setdefault(self.server.version, {}).setdefault(
            "start", dict(self.server.timings))      # how long this server took to start
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        TIMINGS.setdefault(self.server.version, {})[self.scenario] = round(
            time.monotonic() - self.t0, 1)
