"""Run the real CLI (reconciler.cli.main.main: the `pausectl` entry point, its error handling
included) in-process, fast enough for hundreds of hostile cases, and check what every case must
hold: the exit code, no traceback, no "internal error", no secret in the output, exactly one
`file:line[:col]: message` line naming the file at fault, and no file of the repo changed.

In-process, because a subprocess costs ~0.5 s of start-up per command on this box; a timer
(SIGALRM) turns a hang into a failure instead of a stuck suite.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # tests/helpers.py

from helpers import BASE_FILES, make_state  # noqa: E402

# Secrets every case runs with: none of them may ever appear in stdout or stderr.
SECRET_PASSWORD = "hostile-Pa55w0rd-7f3c"
SECRET_TOKEN = "hostile-tok-91d2e8a4"
# Files outside the state repo hold this marker: a confinement failure would leak it.
OUTSIDE_MARKER = "OUTSIDE-SECRET-4b1e"
SECRET_ENV = {"AIRFLOW_USER": "admin", "AIRFLOW_PASSWORD": SECRET_PASSWORD,
              "AIRFLOW_TOKEN": SECRET_TOKEN}
SECRETS = (SECRET_PASSWORD, SECRET_TOKEN, OUTSIDE_MARKER)

LOCATED = re.compile(r"^(?:error: )?(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::(?P<col>\d+))?: "
                     r"(?:error: )?(?P<message>\S.*)$")


class Hang(BaseException):
    """Raised by the timer; a BaseException so the CLI's `except Exception` cannot eat it."""


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float
    cpu: float

    @property
    def both(self) -> str:
        return self.out + self.err


def _on_alarm(signum, frame):
    raise Hang()


def run(argv: list[str], cwd: Path, env: dict | None = None, timeout: float = 30) -> Result:
    """`pausectl ARGV` in `cwd`, in this process."""
    from reconciler.cli.main import main
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    for k in ("PAUSECTL_DEBUG", "PAUSECTL_STATE", "PAUSECTL_JOURNAL_DIR"):
        os.environ.pop(k, None)
    os.environ.update(SECRET_ENV)
    os.environ["COLUMNS"] = "200"
    os.environ["PAUSECTL_JOURNAL_DIR"] = str(cwd / ".journal-outside-state")
    os.environ.update(env or {})
    code = 0
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0, c0 = time.monotonic(), time.process_time()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(argv))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Hang:
        raise AssertionError(f"pausectl {' '.join(argv)} did not finish in {timeout}s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(code, out.getvalue(), err.getvalue(), time.monotonic() - t0,
                  time.process_time() - c0)


def tree_hash(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file (symlinks by their target text, FIFOs by kind)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel.startswith((".journal-outside-state", ".git" + os.sep)) or rel == ".git":
            continue
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_fifo():
            out[rel] = "fifo"
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_clean(r: Result, argv, code: int = 1) -> None:
    """No crash, the expected exit code, no secret anywhere in the output."""
    assert "Traceback" not in r.both, f"{argv}: traceback\n{r.both}"
    assert "internal error" not in r.both, f"{argv}: internal error\n{r.both}"
    for s in SECRETS:
        assert s not in r.both, f"{argv}: output holds the secret {s!r}\n{r.both}"
    assert r.code == code, f"{argv}: exit {r.code}, want {code}\nstdout: {r.out}\nstderr: {r.err}"


def located_lines(r: Result) -> list[re.Match]:
    lines = [ln for ln in r.both.splitlines() if ln.strip()]
    return [m for m in (LOCATED.match(ln) for ln in lines) if m]


def assert_one_location(r: Result, argv, file: str, line: int | None, msg: str) -> None:
    """Exactly one `file:line[:col]: message` line in the whole output, naming file:line."""
    found = located_lines(r)
    assert len(found) == 1, f"{argv}: want one located line, got {[m.group(0) for m in found]}" \
                            f"\n{r.both}"
    m = found[0]
    assert m["file"] == file, f"{argv}: names {m['file']!r}, want {file!r}: {m.group(0)!r}"
    if line is not None:
        assert int(m["line"]) == line, f"{argv}: line {m['line']}, want {line}: {m.group(0)!r}"
    assert msg.lower() in m["message"].lower(), f"{argv}: message lacks {msg!r}: {m.group(0)!r}"


def assert_option_error(r: Result, argv, option: str, msg: str) -> None:
    """A bad command-line value: one `error: --opt: ...` line, no file named."""
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith(f"error: {option}"), f"{argv}: {r.err!r}"
    assert msg.lower() in lines[-1].lower(), f"{argv}: message lacks {msg!r}: {lines[-1]!r}"
    assert not located_lines(r), f"{argv}: names a file for a command-line error: {r.both}"


def base_repo(tmp: Path, files: dict | None = None) -> Path:
    """tests/helpers.py's base state repo under tmp/state, plus `files`; an outside secret
    file beside it (tmp/outside/...) for confinement cases. Returns tmp."""
    make_state(tmp, files)
    outside = tmp / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.yaml").write_text(f"dags:\n  {OUTSIDE_MARKER}: {{paused: false}}\n")
    (outside / "secret.json").write_text('{"dags": [{"dag_id": "%s", "is_paused": true}]}\n'
                                         % OUTSIDE_MARKER)
    (outside / "ca.pem").write_text(f"-----BEGIN CERTIFICATE-----\n{OUTSIDE_MARKER}\n")
    return tmp


__all__ = ["BASE_FILES", "Result", "run", "tree_hash", "assert_clean", "assert_one_location",
           "assert_option_error", "base_repo", "located_lines", "OUTSIDE_MARKER", "SECRETS"]
