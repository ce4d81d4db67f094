"""The UI tests' Airflow: a dedicated server (AF3 3.3.2, AF2 2.11.2) whose processes see
pausectl's `airflow.plugins` entry point, plus users with and without DAG read access, and
the status documents pausectl publishes into it.

The entry point is the one pyproject.toml declares: a generated `*.dist-info` (METADATA +
entry_points.txt copied from pyproject) on the server's PYTHONPATH next to the source tree,
which is what `pip install` into Airflow's venv would give importlib.metadata, without
touching the venv the other tests share.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import tomllib

from testkit.harness import AirflowServer, DagSpec

REPO = Path(__file__).resolve().parents[2]
SCRIPT_REASON = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'
DAGS = [
    DagSpec("ui_paused", owner="data-eng", tags=("etl",), paused_at_creation=False),
    DagSpec("ui_running", owner="analytics", tags=("report",), paused_at_creation=False),
    DagSpec("ui_script", owner="data-eng", tags=("etl",), paused_at_creation=False),
    DagSpec("ui_secret", owner="finance", tags=("finance",), paused_at_creation=False),
]
USERS3 = {"admin": "admin", "nobody": "nobody-pw"}      # nobody: no role, no DAG access
LIMITED2 = ("limited", "limited-pw")                     # AF2: may read ui_paused only


def plugin_path() -> str:
    """A directory with pausectl's distribution metadata (entry points from pyproject)."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    d = Path(tempfile.mkdtemp(prefix="pausectl-plugin-"))
    info = d / f"airflow_pause_reconciler-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\n"
                                   f"Version: {meta['version']}\n")
    lines = []
    for group, entries in meta.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return f"{d}:{REPO}"


class UiServer(AirflowServer):
    """AF3: simple auth manager users admin (ADMIN) and nobody (no role). AF2: FAB users
    admin (Admin) and limited (a role reading one DAG)."""

    def prepare(self) -> None:
        """Also the users (part of the background preparation, before any process runs)."""
        super().prepare()
        if self.major == 3:
            (self.home / "passwords.json").write_text(json.dumps(USERS3))
        else:
            self.add_limited_user()

    def add_limited_user(self) -> None:
        """AF2: a role with the website and one DAG's read permission, and a user in it,
        through FAB's security manager in Airflow's own app (which syncs the permissions)."""
        script = (
            "from airflow.www.app import cached_app\n"
            "app = cached_app()\n"
            "with app.app_context():\n"
            "    sm = app.appbuilder.sm\n"
            "    role = sm.add_role('OneDag')\n"
            "    for action, res in [('can_read', 'Website'), ('can_read', 'DAG:ui_paused'),\n"
            "                        ('menu_access', 'pausectl'),\n"
            "                        ('menu_access', 'Pause policy')]:\n"
            "        perm = sm.create_permission(action, res)\n"
            "        sm.add_permission_to_role(role, perm)\n"
            f"    sm.add_user('{LIMITED2[0]}', 'Lim', 'Ited', 'l@example.com', role,\n"
            f"                password='{LIMITED2[1]}')\n")
        out = subprocess.run([str(self.venv / "bin" / "python"), "-c", script], check=False,
                             env=self.env,
                             capture_output=True, text=True, timeout=300, cwd=self.home)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def make_server(key: str) -> UiServer:
    major = int(key[-1])
    extra = {"PYTHONPATH": plugin_path()}
    if major == 3:
        extra["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin,nobody:"
    else:
        extra["AIRFLOW__FAB__AUTH_RATE_LIMITED"] = "False"
    # AF2: three gunicorn sync workers: each of the two browsers' idle (preconnected) sockets
    # holds one until it times out
    return UiServer(major=major, dags=DAGS, root=REPO, extra_env=extra,
                    workers=3 if major == 2 else 1)


PAUSECTL = """\
environments:
  ui:
    backend: {{type: airflow-api, url: "{url}", username_env: UI_USER, password_env: UI_PASS}}
    status_variable: true
"""
UI_ENV = """\
environment: ui
defaults: {{unmanaged: report}}
dags:
  ui_paused: {{paused: true, reason: "vendor API down", owner: data-eng, ticket: INC-77,
              until: "2030-01-01T00:00:00Z"}}
  ui_running: {{paused: false, reason: "reports run daily", owner: analytics}}
  ui_script: {{paused: true, reason: {script}, owner: data-eng, ticket: SEC-1}}
  ui_secret: {{paused: true, reason: "quarterly close", owner: finance, ticket: FIN-9}}
"""


def state_repo(tmp: Path, server) -> Path:
    state = tmp / "state"
    state.mkdir()
    (state / "pausectl.yaml").write_text(PAUSECTL.format(url=server.url))
    (state / "ui.yaml").write_text(UI_ENV.format(script=json.dumps(SCRIPT_REASON)))
    return state


def legacy_doc() -> dict:
    """A second environment's document written by hand (another Airflow's pausectl): a DAG
    paused 40 days ago, so "paused for more than N days" has something to keep."""
    return {"version": 1, "environment": "legacy", "generated_at": "2026-01-01T00:00:00Z",
            "command": "drift", "desired_ref": None, "repo": None, "emergency": None,
            "summary": {}, "windows": [], "omitted": 0,
            "dags": [{"dag_id": "ui_paused", "live_paused": True, "desired_paused": True,
                      "managed": True, "tags": ["etl"], "owners": ["data-eng"],
                      "rule": "legacy.yaml:3", "reason": "old freeze", "owner": "data-eng",
                      "ticket": "OLD-1", "until": None, "paused_since": "FORTY_DAYS_AGO",
                      "drift": {"cause": "manual", "by": "alice", "when": None,
                                "how": "UI/API", "description": "paused by alice via UI"},
                      "rule_link": "javascript:alert(1)"}]}
