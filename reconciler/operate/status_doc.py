"""The status document: pausectl's view of one environment, for people who look in Airflow.

Every plan, apply, drift and watch tick can publish it (operate/publish.py) to the Airflow
Variable `pausectl.status.<env>` of that environment's Airflow; the Airflow plugin
(reconciler/airflow/plugin/) and `pausectl report` render it. Format: schemas/status.schema.json.

Compatibility: `version` is 1. Fields are only ever added, never renamed or retyped; readers
ignore what they do not know. `hold`, `draining` and `impact` per DAG are optional objects
that other stages fill in (holds, drain, the impact preview): they are described by the schema
already, and a document without them is complete.

The document is size-bounded (`MAX_BYTES`): DAGs a person would look for first (paused,
drifted, managed) are kept, the rest are counted in `omitted`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from msgspec.structs import replace   # LiveDag is a msgspec Struct
from datetime import datetime, timedelta

from reconciler.core.timeutil import iso, utcnow

VERSION = 1
PREFIX = "pausectl.status."
# a Variable is a TEXT column (64 KiB on MySQL); on Postgres/SQLite larger values work, and a
# status page that loads in a browser should stay small anyway
MAX_BYTES = 256 * 1024
NEXT_HORIZON = timedelta(days=14)
OPTIONAL = ("hold", "draining", "impact")     # filled by other stages when they know


def variable_key(env: str) -> str:
    return f"{PREFIX}{env}"


def repo_link() -> dict | None:
    """Where the desired state lives: from the CI's own variables (GitHub Actions names), so a
    link points at the very commit that was planned. None outside CI."""
    server = os.environ.get("GITHUB_SERVER_URL", "").rstrip("/")
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    if not server.startswith("https://") or not repo:
        return None
    return {"url": f"{server}/{repo}", "commit": os.environ.get("GITHUB_SHA") or None}


def _rule_link(repo: dict | None, commit: str | None, state_dir: str, where: str | None):
    if not repo or not commit or not where or ":" not in where:
        return None
    path, line = where.rsplit(":", 1)
    if not line.isdigit():
        path, _, line = path.rpartition(":")        # file:line:col
    prefix = f"{state_dir}/" if state_dir else ""
    return f"{repo['url']}/blob/{commit}/{prefix}{path}#L{line}"


def _drift(item: Mapping) -> dict:
    return {"cause": item.get("cause"), "by": item.get("changed_by"), "when": item.get("when"),
            "how": item.get("how"), "description": item.get("description")}


def _next_transitions(resolution, live, at: datetime) -> dict[str, dict]:
    """The next scheduled flip per DAG within NEXT_HORIZON (windows, from/until)."""
    from reconciler.policy.schedule import compute
    r = resolution.resolver
    try:
        sched = compute(r.cfg, r.state, list(live), at, NEXT_HORIZON, r.emergency)
    except Exception:   # noqa: BLE001 - a rule with too many boundaries: no "next" then
        return {}
    out: dict[str, dict] = {}
    for t in sched.transitions:
        out.setdefault(t.dag_id, {"at": iso(t.at), "action": t.action,
                                  "rule": t.rule.where if t.rule else None})
    return out


def _windows(resolution, at: datetime) -> list[dict]:
    """Upcoming window/from/until boundaries of the environment's rules (the report's timeline)."""
    from reconciler.policy.schedule import rule_events
    r = resolution.resolver
    out = []
    for rule in r.state.all_rules():
        if not (rule.windows or rule.until or rule.from_):
            continue
        try:
            events = rule_events(rule, at, at + NEXT_HORIZON)
        except Exception:   # noqa: BLE001, S112 - same bound as schedule: skip that rule
            continue
        for e in events[:50]:
            out.append({"at": iso(e.at), "event": e.kind, "in_force": e.starts,
                        "rule": rule.label(), "where": rule.where, "paused": rule.paused})
    out.sort(key=lambda e: (e["at"], e["where"]))
    return out[:500]


def dag_entry(dag, dec, *, drift: Mapping | None, event, nxt: dict | None,
              repo: dict | None, commit: str | None, state_dir: str) -> dict:
    rule = dec.rule if dec is not None else None
    paused_since = None
    if dag.is_paused and event is not None and event.is_paused in (True, None):
        paused_since = iso(event.when)
    entry = {
        "dag_id": dag.dag_id, "live_paused": bool(dag.is_paused),
        "desired_paused": dec.paused if dec is not None else None,
        "managed": bool(dec is not None and not dec.unmanaged and rule is not None),
        "tags": list(dag.tags), "owners": list(dag.owners), "stale": bool(dag.is_stale),
        "rule": rule.where if rule else None, "rule_name": rule.label() if rule else None,
        "layer": rule.layer if rule else None,
        "reason": rule.reason if rule else None, "owner": rule.owner if rule else None,
        "ticket": rule.ticket if rule else None,
        "until": iso(rule.until) if rule and rule.until else None,
        "from": iso(rule.from_) if rule and rule.from_ else None,
        "rule_link": _rule_link(repo, commit, state_dir, rule.where if rule else None),
        "conflict": bool(dec is not None and dec.conflict),
        "paused_since": paused_since,
        "last_change": event.describe() if event is not None else None,
        "drift": _drift(drift) if drift else None,
        "next": nxt,
    }
    return entry


def build(env: str, *, command: str, live: Iterable, resolution, plan=None,
          report: Mapping | None = None, events: Mapping | None = None,
          emergency=None, at: datetime | None = None, desired_ref: str | None = None,
          state_dir: str = "", extra: Mapping[str, Mapping] | None = None,
          applied: set[str] | None = None) -> dict:
    """The status document of one environment. `events`: the newest pause event per DAG
    (Observation.last_events()); `extra`: optional per-DAG fields (`hold`, `draining`,
    `impact`) keyed by dag_id, added as they are; `applied`: DAGs an apply just set to their
    desired state (`live` was read before it)."""
    at = at or utcnow()
    live = list(live)
    repo = repo_link()
    commit = desired_ref or (repo or {}).get("commit")
    drifted: dict[str, Mapping] = {}
    for key in ("drifted", "auto_paused", "pending_git_changes"):
        for item in (report or {}).get(key, ()):
            drifted.setdefault(item["dag_id"], item)
    applied = set(applied or ())
    if applied:
        live = [replace(d, is_paused=resolution.decisions[d.dag_id].paused)
                if d.dag_id in applied and d.dag_id in resolution.decisions else d for d in live]
    if plan is not None and report is None:
        for c in plan.changes:
            if c.dag_id in applied:
                continue
            drifted.setdefault(c.dag_id, {"cause": "git", "description": "differs from git"
                                          f"; apply will {c.action.value}"})
    events = dict(events or {})
    nxt = _next_transitions(resolution, live, at)
    dags = []
    for d in sorted(live, key=lambda d: d.dag_id):
        entry = dag_entry(d, resolution.decisions.get(d.dag_id), drift=drifted.get(d.dag_id),
                          event=events.get(d.dag_id), nxt=nxt.get(d.dag_id), repo=repo,
                          commit=commit, state_dir=state_dir)
        if d.dag_id in applied and d.is_paused and entry["paused_since"] is None:
            entry["paused_since"] = iso(at)     # this apply paused it just now
        for name in OPTIONAL:
            value = ((extra or {}).get(d.dag_id) or {}).get(name)
            if value is not None:
                entry[name] = dict(value)
        dags.append(entry)
    em = emergency if emergency is not None else resolution.resolver.emergency
    doc = {
        "version": VERSION, "environment": env, "generated_at": iso(at), "command": command,
        "desired_ref": commit, "repo": repo,
        "emergency": {"reason": em.reason, "owner": em.owner, "started": em.started}
        if em is not None else None,
        "summary": {"dags": len(dags), "paused": sum(d["live_paused"] for d in dags),
                    "managed": sum(d["managed"] for d in dags),
                    "drifted": sum(1 for d in dags if d["drift"]
                                   and d["drift"]["cause"] != "git"),
                    "pending": sum(1 for d in dags if d["drift"]
                                   and d["drift"]["cause"] == "git")},
        "windows": _windows(resolution, at),
        "dags": dags, "omitted": 0,
    }
    return bound(doc)


def _priority(d: dict) -> tuple:
    # what a person looks for first: paused, drifted, managed; the rest goes first when cut
    return (not d["live_paused"], not d["drift"], not d["managed"], d["dag_id"])


def encode(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, sort_keys=False)


def bound(doc: dict, limit: int = MAX_BYTES) -> dict:
    """Cut the DAG list (least interesting first) until the encoded document fits `limit`."""
    text = encode(doc)
    if len(text.encode()) <= limit:
        return doc
    dags = sorted(doc["dags"], key=_priority)
    windows = doc["windows"][:50]
    lo, hi = 0, len(dags)
    while lo < hi:      # the most DAGs that fit, by bisection (each probe encodes once)
        mid = (lo + hi + 1) // 2
        probe = {**doc, "windows": windows, "dags": dags[:mid], "omitted": len(dags) - mid}
        if len(encode(probe).encode()) <= limit:
            lo = mid
        else:
            hi = mid - 1
    kept = sorted(dags[:lo], key=lambda d: d["dag_id"])
    return {**doc, "windows": windows, "dags": kept, "omitted": len(dags) - lo}


def write(store, doc: dict) -> None:
    """Put the document into its Variable (a live.base.VariableStore)."""
    store.set_variable(variable_key(doc["environment"]), encode(doc))
