"""Helpers of the controller tests: a controller as a real process (`python -m reconciler
reconcile ... --watch`) whose stderr lines are read as they come, with their arrival times."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ControllerProc:
    def __init__(self, cwd: Path, args: list[str], env: dict | None = None):
        e = dict(os.environ)
        e.pop("PAUSECTL_STATE", None)
        e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
        e["PYTHONUNBUFFERED"] = "1"
        e.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "reconciler", "reconcile", *args],
                                     cwd=cwd, env=e, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []      # (time.time(), line)
        self._cv = threading.Condition()
        self._eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append((time.time(), line.rstrip("\n")))
                self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def wait_for(self, text: str, timeout: float = 60, after: int = 0) -> tuple[float, str]:
        """The first line (from index `after`) containing `text`."""
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for t, line in self.lines[after:]:
                    if text in line:
                        return t, line
                left = end - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(f"no line with {text!r} within {timeout}s:\n"
                                         + self.output())
                self._cv.wait(min(left, 0.2))

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for _, line in self.lines)

    def address(self) -> str:
        _, line = self.wait_for("serving /metrics /healthz /readyz on http://")
        return line.rsplit("http://", 1)[1].strip()

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout)
        with self._cv:                # the reader has drained the last lines
            self._cv.wait_for(lambda: self._eof, 10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def live_state(root: Path, url: str, env_yaml: str, rollout: str = '{batches: ["100%"]}') -> Path:
    """A state repo whose environment `live` is a harness Airflow."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pausectl.yaml").write_text(
        "environments:\n"
        "  live:\n"
        f"    backend: {{type: airflow-api, url: '{url}', auth: password-token,\n"
        "              username_env: AF_USER, password_env: AF_PASS}\n"
        f"rollout: {rollout}\n"
        "safety: {max_changes: 500}\n", encoding="utf-8")
    (root / "live.yaml").write_text(env_yaml, encoding="utf-8")
    return root
