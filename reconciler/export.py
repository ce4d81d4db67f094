"""Export live pause state (snapshot JSON or a ready-to-commit <env>.yaml) and restore it."""

from __future__ import annotations

import json
from pathlib import Path

from .backends.base import LiveDag
from .backends.snapshot import parse_snapshot, snapshot_document
from .errors import PausectlError
from .plan import Change, Plan, live_hash
from .timeutil import iso, utcnow


def export_json(env: str, live: list[LiveDag]) -> str:
    return json.dumps(snapshot_document(live, env, "pausectl export"), indent=1) + "\n"


def export_yaml(env: str, live: list[LiveDag]) -> str:
    """Every DAG with its live state as a dag entry; pauses get a placeholder reason to edit."""
    import yaml
    today = utcnow().date().isoformat()
    dags = {}
    for d in sorted(live, key=lambda d: d.dag_id):
        if d.is_paused:
            dags[d.dag_id] = {"paused": True, "reason": f"paused in {env} when exported on {today}",
                              "owner": d.owners[0] if d.owners else "unknown"}
        else:
            dags[d.dag_id] = {"paused": False}
    doc = {"environment": env, "defaults": {"unmanaged": "report"}, "dags": dags}
    header = (f"# yaml-language-server: $schema=../schemas/state.schema.json\n"
              f"# Exported from live {env} by pausectl on {today}. Review reasons and owners.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


def restore_plan(env: str, file: Path, live: list[LiveDag]) -> Plan:
    """A plan that puts every DAG in FILE back to its saved is_paused."""
    try:
        raw = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PausectlError("snapshot not found", str(file)) from None
    except UnicodeDecodeError:
        raise PausectlError("snapshot is not valid UTF-8", str(file), 1, 1) from None
    saved = {d.dag_id: d for d in parse_snapshot(raw, str(file))}
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = {}
    if meta.get("environment") not in (None, env):
        raise PausectlError(f"snapshot is of {meta['environment']}, not {env}", str(file))
    now = utcnow()
    plan = Plan(environment=env, generated_at=iso(now), at=iso(now),
                desired_ref=f"snapshot {file}", live_hash=live_hash(live))
    by_id = {d.dag_id: d for d in live}
    for dag_id in sorted(saved):
        want = saved[dag_id].is_paused
        cur = by_id.get(dag_id)
        if cur is None:
            plan.missing.append({"dag_id": dag_id, "rule": str(file), "desired_paused": want})
        elif cur.is_paused == want:
            plan.unchanged += 1
        elif cur.is_stale:
            plan.skipped.append({"dag_id": dag_id, "why": "stale: its DAG file is gone; not flipped"})
        else:
            plan.changes.append(Change(dag_id=dag_id, action="pause" if want else "unpause",
                                       live_paused=cur.is_paused, desired_paused=want,
                                       rule=str(file), reason="restore", owner=None,
                                       rule_name="restore"))
    plan.unmanaged = sorted(d for d in by_id if d not in saved)
    return plan
