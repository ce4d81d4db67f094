"""Run pausectl INSIDE a harness Airflow's own venv (dagmodel backend, operators, example DAG).

pausectl's dependencies that Airflow does not already bring (ruamel.yaml, deepdiff, gitpython,
prometheus-client) are pip-installed into the harness venv once, under the same file lock
`ensure_venv` uses; they are pure additions (measured: pip changes no installed package).
pausectl itself comes from this checkout through PYTHONPATH, so edits need no reinstall.
"""

from __future__ import annotations

import fcntl
import subprocess
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent
EXTRA_DEPS = ["ruamel.yaml>=0.18", "deepdiff>=6.0", "gitpython>=3.1", "prometheus-client>=0.20"]
_CHECK = "import ruamel.yaml, deepdiff, git, prometheus_client"
_ready: set[str] = set()


def ensure_pausectl_deps(venv: Path) -> None:
    key = str(venv)
    if key in _ready:
        return
    py = str(venv / "bin" / "python")
    if subprocess.run([py, "-c", _CHECK], capture_output=True).returncode != 0:
        with open(venv.parent / f"{venv.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if subprocess.run([py, "-c", _CHECK], capture_output=True).returncode != 0:
                out = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                      *EXTRA_DEPS], capture_output=True, text=True, timeout=600)
                if out.returncode != 0:
                    raise RuntimeError(f"installing pausectl's deps into {venv} failed:\n"
                                       f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
    _ready.add(key)


def inside_env(server, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """server.env plus what pausectl needs to import from this checkout."""
    ensure_pausectl_deps(server.venv)
    env = dict(server.env)
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONWARNINGS"] = "ignore"
    env["COLUMNS"] = "200"
    env.pop("PAUSECTL_STATE", None)
    env.pop("PAUSECTL_DEBUG", None)
    if extra:
        env.update(extra)
    return env


def run_python(server, code: str, *, cwd: Path | None = None, timeout: float = 300,
               env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a Python snippet with the Airflow venv's interpreter against the server's home."""
    return subprocess.run([str(server.venv / "bin" / "python"), "-c", textwrap.dedent(code)],
                          env=inside_env(server, env), cwd=cwd or server.home,
                          capture_output=True, text=True, timeout=timeout)


def run_pausectl(server, args: Sequence[str], *, cwd: Path, timeout: float = 300,
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m reconciler ARGS` inside the Airflow venv (so `dagmodel` reaches its DB)."""
    return subprocess.run([str(server.venv / "bin" / "python"), "-m", "reconciler", *args],
                          env=inside_env(server, env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def last_json_line(text: str):
    """The last line of stdout that is a JSON document (Airflow may log before it)."""
    import json
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON line in output:\n{text[-3000:]}")

