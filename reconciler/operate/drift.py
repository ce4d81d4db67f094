"""`pausectl drift`: where live Airflow differs from git, and who made it so.

Each difference is attributed from Airflow's event log: the UI/API user (patch_dag), a bulk
pattern (patch_dags) or the OS user of `airflow dags pause` (cli_dag_pause). A difference with
no manual event behind it is a git change not yet applied, not drift by hand, and so is a
difference whose newest event is pausectl's own write (its journals, own_changes.py). A DAG Airflow
paused by itself after failed runs (the scheduler's auto-pause) is neither: it is listed under
`auto_paused`, held or unpaused as `drift.auto_paused` says (see autopause.py).
Missing, stale and import-error DAGs are reported apart and never flipped blindly.
"""

from __future__ import annotations

import sys

from reconciler.core.timeutil import utcnow
from reconciler.engine import load, open_backend, plan_observed
from reconciler.observe import observe
from reconciler.plan.model import drain_note


def drift_report(state_dir, env: str) -> dict:
    ctx = load(state_dir, env)
    backend = open_backend(ctx.cfg, env)
    try:
        return drift_for(ctx, backend)[0]
    finally:
        backend.close()


def drift_for(ctx, backend):
    """(report, plan, live, resolution) of one environment through an open backend (the
    caller closes it): for callers that bring their own backend or also need the plan."""
    env = ctx.env
    # one observation: the events of every DAG that differs (all changes and holds) read once
    obs = observe(ctx, backend, utcnow(), journal_mirror=True)
    plan, resolution = plan_observed(ctx, obs)
    live = list(obs.live)
    last = obs.last_events()
    by_id = {d.dag_id: d for d in live}
    items = []
    for c in plan.changes:
        note = "will be reverted by apply" if ctx.cfg.drift_mode == "enforce" else ""
        if c.auto_paused:
            note = c.last_changed_by or ""
        if c.drain:
            note = drain_note(c.drain)          # paused: drain: apply waits for its runs
        items.append(_item(c.dag_id, c.live_paused, c.desired_paused, c.rule, last.get(c.dag_id),
                           note, c.auto_paused))
    for h in plan.held:
        items.append(_item(h["dag_id"], h["live_paused"], h["desired_paused"], h["rule"],
                           last.get(h["dag_id"]), h["why"], h.get("auto_paused")))
        if h.get("hold"):                       # `pausectl hold`: not drift, a hold in force
            items[-1].update(cause="hold", description=h["why"], hold=h["hold"])
    items.sort(key=lambda x: x["dag_id"])
    drifted = [x for x in items if x["cause"] == "manual"]
    auto = [x for x in items if x["cause"] == "airflow"]
    pending = [x for x in items if x["cause"] == "git"]
    report = {
        "environment": env, "mode": ctx.cfg.drift_mode,
        "hold_manual_hours": ctx.cfg.hold_manual_hours,
        "auto_paused_policy": ctx.cfg.auto_paused,
        "drifted": drifted, "pending_git_changes": pending, "auto_paused": auto,
        "missing": plan.missing,
        "stale": sorted(s["dag_id"] for s in plan.skipped if s["why"].startswith("stale")),
        "import_errors": sorted(d.dag_id for d in live if d.has_import_errors),
        "protected": [s for s in plan.skipped if "protect" in s["why"]],
        "unmanaged": plan.unmanaged, "conflicts": plan.conflicts,
        "warnings": plan.warnings, "checked_dags": len(by_id),
    }
    if any(x["cause"] == "hold" for x in items):
        report["holds"] = [x for x in items if x["cause"] == "hold"]
    return report, plan, live, resolution


def _item(dag_id, live_paused, desired_paused, rule, event, note, auto=None) -> dict:
    # pausectl's own writes come marked via "pausectl" (observe.py, from its journals)
    manual = auto is None and event is not None and event.via != "pausectl" and \
        event.is_paused in (None, live_paused)
    item = {
        "dag_id": dag_id, "live_paused": live_paused, "desired_paused": desired_paused,
        "rule": rule, "cause": "manual" if manual else "airflow" if auto else "git",
        "changed_by": event.user if manual else None,
        "when": event.when.isoformat() if manual else None,
        "how": {"api": "UI/API", "bulk": "bulk API", "cli": "CLI",
                "operator": "PauseDagsOperator"}.get(event.via, event.via)
        if manual else None,
        "detail": event.detail if manual else None,
        "description": event.describe() if manual else "git changed; not applied yet",
        "note": note,
    }
    if auto:
        item.update(description=f"{auto['reason']} at {auto['when']}", auto_paused=auto,
                    changed_by=auto.get("by"), when=auto["when"], how="Airflow (auto-pause)")
    return item


def _state(p: bool) -> str:
    return "paused" if p else "running"


def drift_text(r: dict, stream=None) -> None:
    from reconciler.core.sanitize import line_writer      # data cannot add lines or commands
    w = line_writer(stream or sys.stdout)
    env = r["environment"]
    for warning in r["warnings"]:
        w(f"warning: {warning}\n")
    if r["drifted"]:
        w(f"{env}: {len(r['drifted'])} DAG(s) drifted from git (drift.mode {r['mode']}):\n")
        for x in r["drifted"]:
            w(f"  {x['dag_id']}: live {_state(x['live_paused'])}, git says "
              f"{_state(x['desired_paused'])} ({x['rule']}); {x['description']}"
              f"{'; ' + x['note'] if x['note'] else ''}\n")
    else:
        w(f"{env}: no drift ({r['checked_dags']} DAGs checked)\n")
    for x in r.get("auto_paused") or []:
        a = x["auto_paused"]
        verb = {"held": "held paused", "released": "apply unpauses it (its rule changed in git "
                "after the auto-pause)", "enforced": "apply unpauses it (drift.auto_paused "
                "enforce)"}[a["outcome"]]
        runs = ", ".join(f"{run['run_id']} {run['state']}" for run in a["runs"][:5])
        w(f"{env}: {x['dag_id']} {a['reason']} at {a['when']}; git says "
          f"{_state(x['desired_paused'])} ({x['rule']}); {verb}"
          f"{'; runs: ' + runs if runs else ''}\n")
    for x in r["pending_git_changes"]:
        if x["note"].startswith("draining"):
            w(f"{env}: {x['dag_id']} {x['note']}\n")
    for x in r.get("holds") or []:
        w(f"{env}: {x['dag_id']} {x['description']}; git says "
          f"{_state(x['desired_paused'])} ({x['rule']})\n")
    if r["pending_git_changes"]:
        w(f"{env}: {len(r['pending_git_changes'])} git change(s) not applied yet: "
          + ", ".join(x["dag_id"] for x in r["pending_git_changes"][:20]) + "\n")
    for m in r["missing"]:
        w(f"  missing: {m['dag_id']} is in git ({m['rule']}) but not in Airflow\n")
    for d in r["stale"]:
        w(f"  stale: {d} (DAG file gone; not flipped)\n")
    for d in r["import_errors"]:
        w(f"  import errors: {d}\n")
    for c in r["conflicts"]:
        w(f"  conflict: {c['dag_id']}: {c['message']}\n")


def drift_markdown(reports: list[dict]) -> str:
    from reconciler.plan.render import md_escape as md
    from reconciler.core.sanitize import md_cap, md_code
    out = []
    for r in reports:
        out.append(f"### Drift in {md_code(r['environment'])}: {len(r['drifted'])} DAG(s)")
        out.append("")
        if r["drifted"]:
            out += ["| dag_id | live | git | changed by | how | when |", "|---|---|---|---|---|---|"]
            for x in r["drifted"]:
                out.append(f"| {md_code(x['dag_id'], table=True)} | {_state(x['live_paused'])} | "
                           f"{_state(x['desired_paused'])} | {md(x['changed_by'])} | "
                           f"{md(x['how'])} | {md(x['when'])} |")
        else:
            out.append("No drift.")
        out.append("")
        if r.get("auto_paused"):
            from reconciler.plan.render import md_escape as esc
            out += [f"Auto-paused by Airflow ({len(r['auto_paused'])}):", "",
                    "| dag_id | why | failed runs | outcome |", "|---|---|---|---|"]
            for x in r["auto_paused"]:
                a = x["auto_paused"]
                out.append(f"| {md_code(x['dag_id'], table=True)} | "
                           f"{esc(a['reason'])} at {esc(a['when'])} | "
                           f"{esc(', '.join(run['run_id'] for run in a['runs'][:5]))} | "
                           f"{a['outcome']} |")
            out.append("")
    return md_cap("\n".join(out) + "\n", note="see the job's drift output")
