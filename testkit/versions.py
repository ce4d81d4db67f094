"""The version matrix and one virtualenv per Airflow version (`ensure_venv`)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit.procs import HarnessError, _clean_environ, _tail

# The version matrix (issue 12): every Airflow minor users run, 2.9 to 3.3, each in its own venv.
MATRIX: tuple[str, ...] = ("2.9.3", "2.10.5", "2.11.2", "3.0.6", "3.1.8", "3.2.1", "3.2.2",
                           "3.3.2")
AIRFLOW_VERSIONS = {3: "3.3.2", 2: "2.11.2"}     # the default per major: AirflowServer(major=N)
# Extra pins per version, installed together with apache-airflow (GitHub's constraints files are
# unreachable here, so only what an unconstrained install breaks is pinned, from PyPI, each to
# what a working neighbour version resolves; measured on Python 3.11, see docs/compat.md).
# fastapi is pinned with the extra Airflow requires: a bare `fastapi==X` made pip backtrack
# through ~80 fastapi releases for the `fastapi[extra]` requirement (measured).
# IN_AIRFLOW: what pausectl's code inside Airflow needs beyond what Airflow brings (pip pulls
# it in with `pip install pausectl`; here pausectl comes from the checkout on PYTHONPATH):
# msgspec, for LiveDag (live/base.py). Airflow 3 and 2.11 bring it already; 2.9/2.10 do not.
IN_AIRFLOW: tuple[str, ...] = ("msgspec>=0.18",)
EXTRA_PINS: dict[str, tuple[str, ...]] = {v: IN_AIRFLOW for v in MATRIX}
# 3.0.6: (1) it signs tokens with `iss: []` when [api_auth] jwt_issuer is unset, and PyJWT >= 2.11
# refuses a non-string iss: every POST /auth/token is a 500 (2.10.1 is the last PyJWT without
# the check). (2) It gets fastapi 0.165, which commits the DB session (the exit of a `yield`
# dependency) after the response is sent: a GET right after a PATCH can read the old state
# (measured: a bulk PATCH's changes not yet in the DB). 3.1 caps fastapi < 0.118; 3.1.8's set.
EXTRA_PINS["3.0.6"] = (*IN_AIRFLOW, "pyjwt==2.10.1", "fastapi[standard]==0.117.1",
                       "cadwyn==5.4.6")
# 3.2.1 / 3.2.2 get fastapi 0.163 / 0.165 (and cadwyn 9): the execution API's routes fail to
# build (pydantic "needs a discriminator field" for TITerminalStatePayload), so dag-processor,
# scheduler and api-server die at start. 3.3.2 caps fastapi < 0.137; 3.3.2's set (cadwyn 9
# needs fastapi >= 0.137.1).
EXTRA_PINS["3.2.1"] = EXTRA_PINS["3.2.2"] = (*IN_AIRFLOW,
                                              "fastapi[standard-no-fastapi-cloud-cli]==0.136.3",
                                              "cadwyn==7.0.0")
MARKER = ".pausectl-installed"
INSTALLING = ".pausectl-installing"     # from venv creation until the marker is written


def _airflow_version_ok(venv: Path, version: str) -> bool:
    airflow = venv / "bin" / "airflow"
    if not airflow.exists():
        return False
    with tempfile.TemporaryDirectory(prefix="pausectl-afcheck-") as home:
        env = _clean_environ()
        env.update(AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False")
        try:
            out = subprocess.run([str(airflow), "version"], env=env, capture_output=True,
                                 text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return False
    lines = out.stdout.strip().splitlines()
    return out.returncode == 0 and bool(lines) and lines[-1].strip() == version


_VERIFIED: set[Path] = set()


def _untouched_since(marker: Path, venv: Path) -> bool:
    """Nothing was installed into or removed from the venv since its marker was written (after
    a working `airflow version`): site-packages and bin are unchanged since then."""
    try:
        stamp = marker.stat().st_mtime
        dirs = [venv / "bin", *(venv / "lib").glob("python*/site-packages")]
        return len(dirs) == 2 and all(d.stat().st_mtime <= stamp for d in dirs)
    except OSError:
        return False


def resolve_version(version: str | int) -> str:
    """A matrix version string from a version ("3.1.8") or a major (3 -> its default)."""
    if isinstance(version, int) and not isinstance(version, bool):
        if version not in AIRFLOW_VERSIONS:
            raise ValueError(f"unsupported Airflow major version {version!r} (use 2 or 3)")
        return AIRFLOW_VERSIONS[version]
    if version not in MATRIX:
        raise ValueError(f"unsupported Airflow version {version!r} (matrix: {', '.join(MATRIX)})")
    return str(version)


def _pip(venv: Path, args: list[str], log: Path, version: str, mode: str = "a") -> None:
    env = _clean_environ()
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    with open(log, mode) as fh:
        cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off",
               "--no-compile",
               *args]
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        raise HarnessError(f"installing Airflow {version} failed (exit {rc}); "
                           f"log {log}:\n{_tail(log)}")


def ensure_venv(version: str | int, root: Path) -> Path:
    """Return `root/.airflow/venv-<version>` with that Airflow (and its EXTRA_PINS), installing
    it if needed. `version` is a matrix version or a major (2/3: its default version).

    A marker file is written only after a successful install and check, so a half-finished
    install (killed pip, network error) is thrown away and redone. A venv without the marker
    whose `airflow version` prints the right version (made by hand or by a probe script) is
    adopted: the pins are pip-installed on top and the marker written. A file lock serialises
    concurrent callers (pytest-xdist workers, the demo) on the same root.
    """
    version = resolve_version(version)
    base = Path(root).resolve() / ".airflow"
    base.mkdir(parents=True, exist_ok=True)
    venv = base / f"venv-{version}"
    marker = venv / MARKER
    want = [f"apache-airflow=={version}", *EXTRA_PINS[version]]
    log = base / f"venv-{version}-install.log"
    with open(base / f"venv-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().split() == want:
            if venv in _VERIFIED or _untouched_since(marker, venv):
                return venv              # `airflow version` costs 2-18 s: not in every process
            if _airflow_version_ok(venv, version):
                _VERIFIED.add(venv)
                return venv
        t = time.monotonic()
        # a pip run killed mid-install (make test stops its background installer when the tests
        # end) leaves INSTALLING behind: such a venv is never adopted, even if `airflow` runs
        if venv.exists() and not (venv / INSTALLING).exists() and \
                _airflow_version_ok(venv, version):
            if EXTRA_PINS[version]:      # adopt: only the pins are missing (or changed)
                _pip(venv, want, log, version, mode="w")
        else:
            if venv.exists():
                shutil.rmtree(venv)
            with open(log, "w") as fh:
                cmd = [sys.executable, "-m", "venv", str(venv)]
                fh.write(f"$ {' '.join(cmd)}\n")
                fh.flush()
                rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                    env=_clean_environ()).returncode
            if rc != 0:
                raise HarnessError(f"creating {venv} failed (exit {rc}); log {log}:\n{_tail(log)}")
            (venv / INSTALLING).touch()
            _pip(venv, want, log, version)
        if not _airflow_version_ok(venv, version):
            raise HarnessError(f"Airflow {version} installed in {venv} but `airflow version` "
                               f"does not work; log {log}:\n{_tail(log)}")
        marker.write_text(" ".join(want) + "\n")
        (venv / INSTALLING).unlink(missing_ok=True)
        INSTALL_SECONDS[version] = round(time.monotonic() - t, 1)
        _VERIFIED.add(venv)
        return venv


INSTALL_SECONDS: dict[str, float] = {}      # installs (or adoptions) done by this process

