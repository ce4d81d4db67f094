"""What other actors do to a harness Airflow (a mixin of `AirflowServer`), for drift
attribution tests: the scheduler's auto-pause, the CLI, the UI toggle, REST PATCHes."""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import urllib.parse
import urllib.request

from testkit.procs import HarnessError, _http

# Run by AirflowServer.auto_pause in the server's own venv: the scheduler's write, through
# Airflow's ORM and the scheduler's own function (same on 2.9.3 ... 3.3.2; read in dagrun.py).
_AUTO_PAUSE = """\
import json, sys
from datetime import datetime, timedelta, timezone
import airflow
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunType

dag_id, n = sys.argv[1], int(sys.argv[2])
af3 = int(airflow.__version__.split(".")[0]) >= 3
now = datetime.now(timezone.utc).replace(microsecond=0)
with create_session() as session:
    if session.get(DagModel, dag_id) is None:
        raise SystemExit(f"no DAG {dag_id!r} in this Airflow")
    runs = []
    for i in range(n):
        when = now - timedelta(minutes=n - i)       # the newest run comes last
        kw = dict(dag_id=dag_id, run_id=f"scheduled__{when.isoformat()}",
                  run_type=DagRunType.SCHEDULED, state=DagRunState.FAILED, start_date=when,
                  data_interval=(when - timedelta(minutes=1), when))
        if af3:
            kw.update(logical_date=when, run_after=when)
        else:
            kw.update(execution_date=when, external_trigger=False)
        run = DagRun(**kw)
        run.end_date = when
        session.add(run)
        runs.append(run)
    session.flush()
    # what DagRun.update_state does when a run of a DAG with max_consecutive_failed_dag_runs fails
    runs[-1]._check_last_n_dagruns_failed(dag_id, n, session)
    session.flush()
    paused = bool(session.get(DagModel, dag_id).is_paused)
print(json.dumps({"paused": paused, "runs": [r.run_id for r in runs]}))
"""


class OtherActors:
    """Needs from the server: major, venv, home, env, logs, url, api_url, username, password
    and auth_headers()."""

    def auto_pause(self, dag_id: str, failed_runs: int = 3) -> dict:
        """Airflow's own auto-pause, exactly as its scheduler writes it: `failed_runs` failed
        scheduled DagRuns are added through Airflow's ORM, then the scheduler's own
        `DagRun._check_last_n_dagruns_failed` (what `DagRun.update_state` calls when a run of
        a DAG with `max_consecutive_failed_dag_runs` fails, 2.9 through 3.3) sets is_paused
        and writes `Log(event="paused", owner="scheduler", extra="[('dag_id', ...), ...]")`.
        Runs in this version's venv; returns {"paused": bool, "runs": [run_id, ...]}."""
        if failed_runs < 1:
            raise ValueError("failed_runs must be at least 1")
        out = self.python(_AUTO_PAUSE, dag_id, str(failed_runs), log="auto-pause")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def cli_pause(self, dag_id: str, paused: bool = True, *, regex: bool = False
                  ) -> subprocess.CompletedProcess:
        """`airflow dags pause|unpause DAG_ID -y` (with `--treat-dag-id-as-regex`: DAG_ID is a
        regex, and Airflow logs the regex in the event's dag_id column). Every matrix version
        has both flags (read in each cli_config.py)."""
        args = ["dags", "pause" if paused else "unpause", dag_id, "-y"]
        if regex:
            args.append("--treat-dag-id-as-regex")
        return self.airflow(*args, log="cli-pause")

    def api_patch(self, dag_id: str, paused: bool) -> dict:
        """PATCH /dags/{dag_id} as the admin user (what the UI toggle sends on AF3)."""
        status, body = _http("PATCH", f"{self.api_url}/dags/{dag_id}", timeout=60,
                             data={"is_paused": paused}, headers=self.auth_headers())
        if status != 200:
            raise HarnessError(f"PATCH /dags/{dag_id} -> {status}: {body[:300]!r}")
        return json.loads(body)

    def ui_toggle(self, dag_id: str, paused: bool) -> None:
        """The pause toggle of the UI. AF3's UI sends PATCH /api/v2/dags/{id} (= api_patch).
        AF2's posts the form endpoint `/paused?dag_id=..&is_paused=<state BEFORE the toggle>`
        in a logged-in session with its CSRF token, and Airflow logs it as event `paused`
        (owner = the user), the name the scheduler's auto-pause uses too."""
        if self.major == 3:
            self.api_patch(dag_id, paused)
            return
        jar = http.cookiejar.CookieJar()
        web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

        def csrf(page: str, pattern: str) -> str:
            m = re.search(pattern, page)
            if not m:
                raise HarnessError(f"AF2 UI: no CSRF token in {page[:200]!r}")
            return m.group(1)

        form = web.open(f"{self.url}/login/", timeout=60).read().decode()
        token = csrf(form, r'name="csrf_token"[^>]*value="([^"]+)"')
        web.open(f"{self.url}/login/", urllib.parse.urlencode(
            {"username": self.username, "password": self.password, "csrf_token": token}
        ).encode(), timeout=60).read()
        home = web.open(f"{self.url}/home", timeout=60).read().decode()
        meta = csrf(home, r"var csrfToken = '([^']+)'")      # main.html, as the UI's JS sends it
        query = urllib.parse.urlencode({"dag_id": dag_id, "is_paused": str(not paused).lower()})
        req = urllib.request.Request(f"{self.url}/paused?{query}", data=b"", method="POST",
                                     headers={"X-CSRFToken": meta, "Referer": f"{self.url}/home"})
        with web.open(req, timeout=60) as resp:
            if resp.status != 200:
                raise HarnessError(f"AF2 UI POST /paused -> {resp.status}")

    def bulk_patch(self, pattern: str, paused: bool) -> dict:
        """One bulk PATCH /dags?dag_id_pattern=PATTERN (v1 needs update_mask). Like any API
        user, it may change only one page of the matches (AF2, and AF3 3.0.0-3.2.1)."""
        query = urllib.parse.urlencode({"dag_id_pattern": pattern, "update_mask": "is_paused"}
                                       if self.major == 2 else {"dag_id_pattern": pattern})
        status, body = _http("PATCH", f"{self.api_url}/dags?{query}", timeout=60,
                             data={"is_paused": paused}, headers=self.auth_headers())
        if status != 200:
            raise HarnessError(f"PATCH /dags?{query} -> {status}: {body[:300]!r}")
        return json.loads(body)

    def python(self, code: str, *args: str, log: str | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a Python snippet with this version's interpreter against this home (Airflow's
        ORM reaches this server's DB). Raises HarnessError with the output tail on failure."""
        assert self.venv is not None, "call start() first"
        out = subprocess.run([str(self.venv / "bin" / "python"), "-c", code, *args],
                             env={**self.env, "PYTHONWARNINGS": "ignore"}, capture_output=True,
                             text=True, timeout=timeout, cwd=self.home)
        if log:
            (self.logs / f"{log}.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise HarnessError(f"python snippet failed ({out.returncode}):\n"
                               + "\n".join((out.stdout + out.stderr).splitlines()[-30:]))
        return out
