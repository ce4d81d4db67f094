"""Helpers of the real-Airflow safe-apply tests (test_safe_apply.py, test_safe_apply_faults.py):
a state repo pointing at a harness server, the truth read from Airflow itself, and in-process
speed-ups that keep the same code paths."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import write_files

ENV = "live"


def state_repo(base: Path, url: str, env_yaml: str, rollout: str,
               backend_extra: str = "", protect: str = "[]") -> Path:
    root = base / "state"
    write_files(root, {
        "pausectl.yaml": (
            "environments:\n"
            f"  {ENV}:\n"
            f"    backend: {{type: airflow-api, url: '{url}', auth: password-token,\n"
            f"              username_env: AF_USER, password_env: AF_PASS{backend_extra}}}\n"
            f"rollout: {rollout}\n"
            f"safety: {{max_changes: 2000, protect: {protect}}}\n"),
        f"{ENV}.yaml": env_yaml,
    })
    return root


def patch_events(server, since: str) -> list[tuple[str, str]]:
    """Single-DAG PATCHes Airflow logged since `since` (AF2 prefixes its API events)."""
    event = "patch_dag" if server.major == 3 else "api.patch_dag"
    return server.query("SELECT dag_id, extra FROM log WHERE event = ? AND dttm >= ? "
                        "ORDER BY id", (event, since))


def report(capsys, text: str) -> None:
    """A measured number for the log (-s), past the capture InProcess uses."""
    with capsys.disabled():
        print(f"\n[safe-apply] {text}", flush=True)


def variable(server, key: str) -> str | None:
    """An Airflow Variable through the API (the DB holds it encrypted)."""
    import httpx
    r = httpx.get(f"{server.api_url}/variables/{key}", headers=server.auth_headers(), timeout=30)
    return None if r.status_code == 404 else r.json()["value"]


def fast_settle(monkeypatch, **attrs) -> None:
    """In-process runs: a shorter lock read-back settle (0.05 s, not 0.5 s; the schema has no
    key for it) and any other backend attribute given: the same code paths, faster."""
    from reconciler import engine
    real_open = engine.open_backend

    def open_backend(cfg, env):
        b = real_open(cfg, env)
        b.create_settle = 0.05
        for k, v in attrs.items():
            setattr(b, k, v)
        return b

    monkeypatch.setattr(engine, "open_backend", open_backend)


def warm_up(server) -> None:
    """The first request to each API route of a fresh server pays for lazy imports (about a
    second each on a loaded box): touch the routes a timing smoke check uses."""
    import httpx
    h = server.auth_headers()
    with httpx.Client(base_url=server.api_url, headers=h, timeout=60) as c:
        c.get("/dags", params={"limit": 100})
        c.post("/variables", json={"key": "pausectl.warm-up", "value": "1"})
        c.get("/variables/pausectl.warm-up")
        c.delete("/variables/pausectl.warm-up")
        c.patch("/dags", params={"dag_id_pattern": "no-such-dag-x", "update_mask": "is_paused"},
                json={"is_paused": True})


def db_now(server) -> str:
    return server.query("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")[0][0]


def latest_journal(jdir: Path) -> dict | None:
    """The newest journal of the test environment in jdir, if any."""
    files = sorted(jdir.glob(f"{ENV}-*.json"))
    return json.loads(files[-1].read_text()) if files else None
