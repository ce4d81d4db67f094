"""Drive the real `pausectl` in a real terminal: one tmux server per test module (its own
socket), one pane per size reused for every command (respawn-pane), the screen read back with
capture-pane. What a user sees, rows as the terminal drew them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TMUX = "/usr/bin/tmux"


class Tmux:
    def __init__(self, cwd: Path, env: dict[str, str] | None = None):
        self.sock = f"pausectl-{uuid.uuid4().hex[:8]}"
        self.cwd = cwd
        self.rcdir = Path(tempfile.mkdtemp(prefix="pausectl-tmux-"))
        self.env = {"PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(cwd),
                    "TERM": "xterm-256color", "LANG": "C.UTF-8", "TZ": "UTC",
                    "PYTHONPATH": str(REPO), **(env or {})}
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", "80", "-y", "24",
                   "sleep 86400")
        self._tmux("set-option", "-g", "history-limit", "50000")
        self.sizes: dict[tuple[int, int, int], str] = {}

    def _tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-u", "-L", self.sock, *args], check=True, capture_output=True,
                              text=True, timeout=30).stdout

    def pane(self, cols: int, rows: int, slot: int = 0) -> str:
        """A window of exactly cols x rows (created once per slot, reused)."""
        key = (cols, rows, slot)
        if key not in self.sizes:
            name = f"w{cols}x{rows}s{slot}"
            self._tmux("new-window", "-d", "-n", name, "sleep 86400")
            self._tmux("set-option", "-w", "-t", name, "window-size", "manual")
            self._tmux("resize-window", "-t", name, "-x", str(cols), "-y", str(rows))
            self.sizes[key] = name
        return self.sizes[key]

    def start(self, cols: int, rows: int, argv: list[str], env: dict | None = None,
              slot: int = 0) -> str:
        """Run `pausectl ARGV` in the pane of that size (a fresh screen and history)."""
        target = self.pane(cols, rows, slot)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in {**self.env, **(env or {})}.items())
        rc = self._rc(target)
        rc.unlink(missing_ok=True)
        # the exit code goes to a file and the pane stays open: tmux 3.3 sometimes never
        # notices a pane's process ended (it stays a zombie), so pane_dead is not waited for
        cmd = (f"cd {shlex.quote(str(self.cwd))} && env -i {exports} "
               f"{shlex.quote(sys.executable)} -m reconciler {shlex.join(argv)}; "
               f"echo $? > {shlex.quote(str(rc))}.tmp; mv {shlex.quote(str(rc))}.tmp "
               f"{shlex.quote(str(rc))}; exec sleep 86400")
        self._tmux("respawn-pane", "-k", "-t", target, cmd)
        self._tmux("clear-history", "-t", target)
        return target

    def _rc(self, target: str) -> Path:
        return self.rcdir / f"{target}.rc"

    def dead(self, target: str) -> int | None:
        """The exit code of the command in `target`, None while it runs."""
        try:
            return int(self._rc(target).read_text())
        except (OSError, ValueError):
            return None

    def screen(self, target: str, history: bool = True) -> list[str]:
        """The rows as drawn (wrapped rows stay separate), scrollback included."""
        args = ["capture-pane", "-p", "-t", target] + (["-S", "-"] if history else [])
        rows = self._tmux(*args).split("\n")
        while rows and not rows[-1].strip():
            rows.pop()
        return rows

    def wait_for(self, target: str, pattern: str, timeout: float = 60) -> list[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.screen(target)
            if any(rx.search(r) for r in rows):
                return rows
            if self.dead(target) is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never appeared:\n" + "\n".join(self.screen(target)))

    def run(self, cols: int, rows: int, argv: list[str], env: dict | None = None,
            timeout: float = 60) -> tuple[int, list[str]]:
        target = self.start(cols, rows, argv, env)
        deadline = time.monotonic() + timeout
        while (code := self.dead(target)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"pausectl {argv} still running:\n"
                                     + "\n".join(self.screen(target)))
            time.sleep(0.03)
        return code, self.screen(target)

    def run_all(self, jobs: list[tuple[int, int, list[str]]], at_once: int = 4,
                timeout: float = 90) -> list[tuple[int, list[str]]]:
        """Several runs, `at_once` at a time in their own panes (2 cores: the CPU is the
        limit); results in the order of `jobs`."""
        results: dict[int, tuple[int, list[str]]] = {}
        for start in range(0, len(jobs), at_once):
            chunk = list(enumerate(jobs))[start:start + at_once]
            targets = {i: self.start(c, r, argv, slot=k) for k, (i, (c, r, argv))
                       in enumerate(chunk)}
            for i, target in targets.items():
                results[i] = self.finish(target, timeout)
        return [results[i] for i in range(len(jobs))]

    def keys(self, target: str, *keys: str) -> None:
        self._tmux("send-keys", "-t", target, *keys)

    def finish(self, target: str, timeout: float = 60) -> tuple[int, list[str]]:
        deadline = time.monotonic() + timeout
        while (code := self.dead(target)) is None:
            if time.monotonic() > deadline:
                pid = self._tmux("display-message", "-p", "-t", target, "#{pane_pid}").strip()
                ps = subprocess.run(["ps", "-o", "pid,stat,wchan:24,cmd", "--ppid", pid, "-p", pid],
                                    capture_output=True, text=True).stdout
                raise AssertionError("still running:\n" + "\n".join(self.screen(target))
                                     + "\n" + ps)
            time.sleep(0.03)
        return code, self.screen(target)

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.sock, "kill-server"], capture_output=True, timeout=30)
        shutil.rmtree(self.rcdir, ignore_errors=True)


def split_identifiers(rows: list[str], identifiers) -> list[str]:
    """Identifiers drawn across two rows: the end of one row and the start of the next join
    into one (the terminal wrapped, or a renderer folded, inside it)."""
    bad = []
    for a, b in zip(rows, rows[1:]):
        a_end = a.rstrip().rsplit(" ", 1)[-1] if a.strip() else ""
        b_start = b.lstrip().split(" ", 1)[0] if b.strip() else ""
        if not a_end or not b_start:
            continue
        joined = a_end + b_start
        for x in identifiers:
            if x in joined and x not in a_end and x not in b_start:
                bad.append(f"{x!r} split: {a!r} / {b!r}")
    return bad


ESC = re.compile(r"\x1b|\x9b")


def env_for_pipe() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PAUSECTL", "NO_COLOR"))}
    e["PYTHONPATH"] = str(REPO)
    return e
