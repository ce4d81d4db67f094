"""Export live pause state (snapshot JSON or a ready-to-commit <env>.yaml) and restore it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reconciler.live.base import LiveDag
from reconciler.live.snapshot import json_line, parse_snapshot, snapshot_document
from reconciler.core.errors import PausectlError
from reconciler.plan.model import Change, Plan, live_hash
from reconciler.plan.records import Action, Missing, Skip
from reconciler.core.timeutil import iso, utcnow


def export_json(env: str, live: list[LiveDag]) -> str:
    from reconciler.core.jsonout import dumps      # json.dumps(indent=1)'s bytes, in C
    return dumps(snapshot_document(live, env, "pausectl export"), indent=1) + "\n"


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


def restore_plan(env: str, file: Path, live: list[LiveDag], skip_missing: bool = False,
                 from_env: str | None = None, rollout: dict | None = None) -> Plan:
    """A plan that puts every DAG in FILE back to its saved is_paused, frozen with the
    batches of `rollout` (the restore run's).

    An export of another environment is refused unless `from_env` names it (copying one
    environment's pause state into another is deliberate). A DAG of FILE that ENV does not
    have (typical for such a file, or for one older than a DAG's removal) is refused, naming
    the first such DAG's line, unless `skip_missing` (then listed in plan.missing, untouched)."""
    try:
        raw = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PausectlError("snapshot not found", str(file)) from None
    except IsADirectoryError:
        raise PausectlError("snapshot is a directory, not a file", str(file)) from None
    except UnicodeDecodeError:
        raise PausectlError("snapshot is not valid UTF-8", str(file), 1, 1) from None
    saved_list = parse_snapshot(raw, str(file))
    saved = {d.dag_id: d for d in saved_list}
    meta = json.loads(raw)            # parse_snapshot proved it is a JSON object
    source = meta.get("environment")
    if source not in (None, env) and source != from_env:
        raise PausectlError(f"snapshot is of environment {str(source)!r}, not {env!r}; nothing "
                            f"was changed (pass --from-env {_shown(str(source))} to restore it "
                            f"into {env})", str(file), _key_line(raw, "environment"))
    now = utcnow()
    plan = Plan(environment=env, generated_at=iso(now), at=iso(now),
                desired_ref=f"snapshot {file}", live_hash=live_hash(live))
    by_id = {d.dag_id: d for d in live}
    absent = [i for i, d in enumerate(saved_list) if d.dag_id not in by_id]
    if absent and not skip_missing:
        names = ", ".join(_shown(saved_list[i].dag_id) for i in absent[:5])
        raise PausectlError(f"{len(absent)} DAG(s) of this snapshot do not exist in {env} "
                            f"({names}{' ...' if len(absent) > 5 else ''}): is it from another "
                            "environment? nothing was changed (--skip-missing restores the "
                            "others)", str(file), json_line(raw, absent[0], "dag_id"))
    for dag_id in sorted(saved):
        want = saved[dag_id].is_paused
        cur = by_id.get(dag_id)
        if cur is None:
            plan.missing.append(Missing(dag_id, str(file), want))
        elif cur.is_paused == want:
            plan.unchanged += 1
        elif cur.is_stale:
            plan.skipped.append(Skip(dag_id, "stale: its DAG file is gone; not flipped"))
        else:
            plan.changes.append(Change(dag_id=dag_id, action=Action.to(want),
                                       live_paused=cur.is_paused, desired_paused=want,
                                       rule=str(file), reason="restore", owner=None,
                                       rule_name="restore"))
    plan.unmanaged = sorted(d for d in by_id if d not in saved)
    return plan.freeze(rollout or {}, live)


def _shown(dag_id: str) -> str:
    """A dag_id from a file, safe for a terminal line (control characters escaped)."""
    return dag_id if _PLAIN_ID.match(dag_id) else ascii(dag_id)


_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")


def _key_line(raw: str, key: str) -> int:
    """Line of the first top-level-looking `"key":` in a JSON text (for error messages)."""
    m = re.search(r'"' + re.escape(key) + r'"\s*:', raw)
    return raw[: m.start()].count("\n") + 1 if m else 1
