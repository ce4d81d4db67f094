"""Progress on a terminal against real Airflow 3.3.2 (the session `airflow3` server): an apply
whose gate waits shows a countdown naming what it waits for, while the log lines land above it,
and once done the screen holds only the lines themselves (a transient display: nothing of the
bar is left). Piped, the same apply writes no escape code and no progress at all."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers import db_states, write_files
from tmuxkit import ESC, Tmux, env_for_pipe

ENV_YAML = """environment: live
defaults: {unmanaged: ignore}
dags:
  etl_000: {paused: false, reason: "back on", owner: data-eng}
  etl_001: {paused: false, reason: "back on", owner: data-eng}
  etl_002: {paused: false, reason: "back on", owner: data-eng}
"""
BAR = "━"


@pytest.fixture()
def repo(tmp_path, airflow3):
    airflow3.reset()
    write_files(tmp_path / "state", {
        "pausectl.yaml": (
            "environments:\n  live:\n"
            f"    backend: {{type: airflow-api, url: '{airflow3.url}', auth: password-token,\n"
            "              username_env: AF_USER, password_env: AF_PASS}\n"
            "rollout: {batches: ['100%'], gate: {wait_seconds: 3, max_failed_runs: 0}}\n"),
        "live.yaml": ENV_YAML})
    return tmp_path


ENV = {"AF_USER": "admin", "AF_PASS": "admin"}


def test_gate_wait_countdown_leaves_no_garbage(repo, airflow3):
    tmux = Tmux(repo, {**ENV, "PAUSECTL_JOURNAL_DIR": str(repo / "journals")})
    try:
        target = tmux.start(80, 24, ["apply", "live", "--yes"])
        during = tmux.wait_for(target, r"gate: health of etl_000, etl_001 \+1 more .*\ds left",
                               timeout=60)
        bar = next(r for r in during if "s left" in r)
        assert BAR in bar and len(bar) <= 80
        # the log line printed while the display runs sits on its own row above it
        assert any(r.startswith("gate: waiting 3s before checking 3 DAG(s)") for r in during)
        code, after = tmux.finish(target)
        raw = tmux._tmux("capture-pane", "-p", "-e", "-S", "-", "-t", target)
    finally:
        tmux.close()
    assert code == 0, after
    assert after[-1] == "Apply complete: 3 DAG(s) changed in live."
    assert not [r for r in after if BAR in r or "s left" in r or "applying" in r], after
    assert any(r.startswith("gate after batch 1: passed") for r in after)
    # only colour codes stay on the screen (no cursor movement text, no half-drawn rows)
    assert not re.search(r"\x1b\[[0-9;]*[ABCDHJKf]", raw)
    states = db_states(airflow3)
    assert not any(states[d] for d in ("etl_000", "etl_001", "etl_002"))


def test_piped_apply_has_no_progress_or_escape(repo, airflow3):
    p = subprocess.run([sys.executable, "-m", "reconciler", "apply", "live", "--yes",
                        "--wait-seconds", "1"], cwd=repo, capture_output=True, text=True,
                       env={**env_for_pipe(), **ENV, "TERM": "xterm-256color",
                            "PAUSECTL_JOURNAL_DIR": str(repo / "journals")}, timeout=120)
    assert p.returncode == 0, p.stderr
    assert not ESC.search(p.stdout + p.stderr)
    assert BAR not in p.stderr and "s left" not in p.stderr
    assert "gate: waiting 1s before checking 3 DAG(s)" in p.stderr
