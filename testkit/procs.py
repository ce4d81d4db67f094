"""Processes, environments and HTTP for the harness: the plumbing every other module uses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_TIMEOUT = float(os.environ.get("PAUSECTL_AIRFLOW_READY_TIMEOUT", "180"))


class HarnessError(RuntimeError):
    """Airflow could not be installed or started; the message carries the log tail."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])



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
    kill_trees([proc], grace)


def kill_trees(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM every process of these trees at once, wait up to `grace` for all of them
    together, then SIGKILL what is left (one wait for a server's api-server, scheduler and
    dag-processor instead of one after the other)."""
    roots = [p for p in procs if p.poll() is None or _descendants(p.pid)]
    if not roots:
        return
    pids = [pid for p in roots for pid in (p.pid, *_descendants(p.pid))]
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
        for p in roots:
            p.poll()
        if not any(_alive(pid) for pid in pids):
            break
        time.sleep(0.1)
    for pid in [*pids, *(d for p in roots for d in _descendants(p.pid))]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pgid in pgids:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    for p in roots:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)
    # SIGKILL is delivered when the process next runs: on a loaded box an orphan (re-parented,
    # not ours to wait for) can take a moment to die; the caller expects the trees gone
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


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

