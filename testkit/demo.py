"""`make demo`: pausectl end to end against a real local Airflow 3.

Starts Airflow 3.3.2 on 127.0.0.1 with the example DAGs, points a copy of the example state
repo's `prod` at it, then: plan -> apply -> a manual change through the REST API by another
user -> drift with attribution -> apply reconciles it back -> plan shows no changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_STATE = ROOT / "state"


def example_dags():
    from testkit.harness import DagSpec
    snap = json.loads((EXAMPLE_STATE / "snapshots" / "prod.json").read_text())
    return [DagSpec(dag_id=d["dag_id"], tags=tuple(d["tags"]), owner=(d["owners"] or ["airflow"])[0],
                    paused_at_creation=d["is_paused"]) for d in snap["dags"]]


def demo_state(dest: Path, url: str) -> Path:
    """Copy the example state repo; make prod an airflow-api backend pointing at `url`."""
    state = dest / "state"
    shutil.copytree(EXAMPLE_STATE, state)
    cfg = (state / "pausectl.yaml").read_text()
    cfg = cfg.replace(
        "backend: {type: snapshot, path: snapshots/prod.json}",
        f"backend: {{type: airflow-api, url: \"{url}\", auth: password-token,\n"
        f"              username_env: PAUSECTL_DEMO_USER, password_env: PAUSECTL_DEMO_PASSWORD}}")
    # a demo should not wait five minutes at each health gate
    cfg = cfg.replace("gate: {wait_seconds: 300,", "gate: {wait_seconds: 2,")
    (state / "pausectl.yaml").write_text(cfg)
    return state


def step(title: str) -> None:
    bar = "=" * 78
    print(f"\n{bar}\n== {title}\n{bar}", flush=True)


def pausectl(*args: str, cwd: Path, env: dict, ok=(0,)) -> int:
    print(f"$ pausectl {' '.join(args)}", flush=True)
    rc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env).returncode
    if rc not in ok:
        raise SystemExit(f"demo: `pausectl {' '.join(args)}` exited {rc}")
    return rc


def main() -> None:
    import httpx

    from testkit.harness import AirflowServer

    step("Starting a local Airflow 3.3.2 (first run installs it into .airflow/venv-3)")
    server = AirflowServer(major=3, dags=example_dags(), root=ROOT,
                           extra_env={"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS":
                                      "admin:admin,oncall:admin"})
    with server, tempfile.TemporaryDirectory(prefix="pausectl-demo-") as tmp:
        print(f"Airflow {server.version} at {server.url} (home {server.home})")
        work = Path(tmp)
        demo_state(work, server.url)
        env = {**os.environ, "PAUSECTL_DEMO_USER": server.username,
               "PAUSECTL_DEMO_PASSWORD": server.password,
               "PAUSECTL_JOURNAL_DIR": str(work / "journal"), "PYTHONPATH": str(ROOT)}

        step("1. validate the state repo, then plan prod against live Airflow")
        pausectl("validate", cwd=work, env=env)
        pausectl("plan", "prod", "--detailed-exitcode", cwd=work, env=env, ok=(2,))

        step("2. apply: canary batch first, health gate, then the rest")
        pausectl("apply", "prod", "--yes", cwd=work, env=env)

        step("3. someone pauses report_daily_sales by hand, as user 'oncall', via the REST API")
        oncall_password = _password_of(server, "oncall")
        with httpx.Client(base_url=server.url, timeout=30) as http:
            token = http.post("/auth/token", json={"username": "oncall",
                                                   "password": oncall_password}).json()["access_token"]
            r = http.patch("/api/v2/dags/report_daily_sales", json={"is_paused": True},
                           headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
        print("PATCH /api/v2/dags/report_daily_sales {\"is_paused\": true} as oncall -> "
              f"{r.status_code}")

        step("4. drift: who changed what, when, and how")
        pausectl("drift", "prod", "--detailed-exitcode", cwd=work, env=env, ok=(2,))

        step("5. reconcile: apply puts git's state back")
        pausectl("apply", "prod", "--yes", cwd=work, env=env)

        step("6. plan again: live matches git")
        pausectl("plan", "prod", "--detailed-exitcode", cwd=work, env=env)
        pausectl("export", "prod", "--format", "yaml", cwd=work, env=env)
    step("Demo finished; the local Airflow was stopped.")


def _password_of(server, user: str) -> str:
    """SimpleAuthManager writes generated passwords for extra users into its passwords file."""
    path = Path(server.home) / "passwords.json"
    return json.loads(path.read_text())[user]


if __name__ == "__main__":
    main()
