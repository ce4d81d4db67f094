"""The `pausectl` command's way out (cli/main.py `entry`): it skips the interpreter's teardown
(os._exit after the exit handlers), so these check what that must not lose: every byte of
the output, the exit code, the error line, a closed pipe, an exit handler's work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from reconciler.cli.main import _exit_code

try:
    from helpers import EXAMPLE_STATE, REPO, run_cli
except ImportError:  # pragma: no cover
    from tests.helpers import EXAMPLE_STATE, REPO, run_cli

AT = "2026-11-25T12:00:00Z"


@pytest.fixture
def example(tmp_path):
    shutil.copytree(EXAMPLE_STATE, tmp_path / "state")
    return tmp_path


def test_output_to_a_file_is_complete_and_the_same_as_in_process(example, capsys, monkeypatch):
    out = example / "plan.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(out, "wb") as f:      # a file, not a pipe: buffered, flushed only on the way out
        rc = subprocess.run([sys.executable, "-m", "reconciler", "plan", "prod", "--at", AT,
                             "--format", "json"], cwd=example, stdout=f, env=env,
                            timeout=60).returncode
    assert rc == 0
    from reconciler.cli.main import main
    monkeypatch.chdir(example)
    with pytest.raises(SystemExit) as e:
        main(["plan", "prod", "--at", AT, "--format", "json"])
    assert e.value.code in (0, None)
    mine, theirs = out.read_text(), capsys.readouterr().out
    # generated_at differs by the clock; every other byte is the same
    strip = lambda s: [ln for ln in s.splitlines() if '"generated_at"' not in ln]  # noqa: E731
    assert strip(mine) == strip(theirs) and len(mine) > 1000


def test_exit_codes_and_the_error_line(example):
    r = run_cli(["plan", "prod", "--at", AT, "--detailed-exitcode"], example)
    assert r.returncode == 2 and "pause" in r.stdout
    r = run_cli(["plan", "nope"], example)
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "unknown environment 'nope'" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_closed_pipe_is_a_quiet_exit(example):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run(f"{sys.executable} -m reconciler plan prod --at {AT} --format json "
                       "| head -c 20", shell=True, cwd=example, env=env, capture_output=True,
                       text=True, timeout=60)
    assert len(p.stdout) == 20
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr


def test_exit_handlers_still_run(tmp_path):
    """atexit work (logging's flush, a TemporaryDirectory's finalizer) still happens."""
    mark = tmp_path / "mark"
    code = ("import atexit, sys; from pathlib import Path\n"
            f"atexit.register(lambda: Path({str(mark)!r}).write_text('ran'))\n"
            "from reconciler.cli.main import entry\n"
            "entry(['--version'])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert p.returncode == 0 and p.stdout.strip()
    assert mark.read_text() == "ran"


def test_exit_code_is_what_the_interpreter_makes_of_it(capsys):
    assert _exit_code(None) == 0 and _exit_code(0) == 0 and _exit_code(3) == 3
    assert _exit_code(256 + 2) == 2
    assert _exit_code("bad thing") == 1
    assert capsys.readouterr().err == "bad thing\n"
    # hostile: a message cannot start a workflow command or carry escapes to the terminal
    assert _exit_code("x\n::set-output name=a::b\x1b[2J") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "::" not in err
