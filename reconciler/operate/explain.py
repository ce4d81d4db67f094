"""`pausectl explain`: every rule that matches one DAG, which one won and why."""

from __future__ import annotations

import sys
from datetime import datetime

from reconciler.live.base import LiveDag
from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import iso
from reconciler.observe import Context, Observation, resolve


def explain_dag(ctx: Context, obs: Observation, dag_id: str, at: datetime | None = None) -> dict:
    at = obs.at if at is None else at
    dag = obs.dag(dag_id)
    in_airflow = dag is not None
    if dag is None:
        if dag_id not in ctx.state.dag_rules:
            raise PausectlError(f"DAG {dag_id!r} is neither in {ctx.env}'s Airflow nor in git")
        dag = LiveDag(dag_id=dag_id, is_paused=False)
    # the whole environment is resolved (the resolution plan uses): a cascade reaches this DAG
    # from others
    res = resolve(ctx, obs, at) if in_airflow else resolve(ctx, obs, at, dags=[dag])
    resolver = res.resolver
    dec = res.decisions[dag_id]
    rules = []
    for c in resolver.candidates(dag):
        r = c.rule
        matched_by = "dag entry"
        if r.origin is not None:
            from reconciler.policy.cascade import chain_text
            matched_by = "cascade " + chain_text(r.chain[0][0], r.chain[1:])
        elif r.selector:
            matched_by = r.selector.describe()
        rules.append({
            "rule": r.label(), "where": r.where, "layer": r.layer, "paused": r.paused,
            "priority": r.priority, "in_force": c.inactive is None, "inactive": c.inactive,
            "reason": r.reason, "owner": r.owner, "ticket": r.ticket,
            "until": iso(r.until) if r.until else None,
            "matched_by": matched_by,
            "winner": r is dec.rule,
        })
        if r.origin is not None:
            from reconciler.policy.cascade import chain_json
            rules[-1]["cascade"] = chain_json(r)
    return {
        "environment": ctx.env, "dag_id": dag_id, "at": iso(at),
        "in_airflow": in_airflow,
        "live_paused": dag.is_paused if in_airflow else None,
        "is_stale": dag.is_stale, "has_import_errors": dag.has_import_errors,
        "desired_paused": dec.paused,
        "decided_by": dec.rule.where if dec.rule else None,
        "conflict": [r.where for r in dec.conflict] if dec.conflict else None,
        "unmanaged": dec.unmanaged, "why": resolver.why(dec, dag), "rules": rules,
        "precedence": {"layers": list(ctx.cfg.layers), "tie": ctx.cfg.tie},
    }


def _state(paused) -> str:
    return {True: "paused", False: "running", None: "undecided"}[paused]


def explain_text(x: dict, stream=None) -> None:
    from reconciler.core.sanitize import line_writer      # data cannot add lines or commands
    w = line_writer(stream or sys.stdout)
    live = "not in Airflow" if not x["in_airflow"] else _state(x["live_paused"])
    w(f"{x['dag_id']} in {x['environment']} at {x['at']}\n")
    w(f"  live:    {live}{' (stale)' if x['is_stale'] else ''}"
      f"{' (import errors)' if x['has_import_errors'] else ''}\n")
    w(f"  desired: {_state(x['desired_paused'])}"
      f"{' (unmanaged: left as is)' if x['unmanaged'] else ''}\n")
    w(f"  why:     {x['why']}\n")
    if x["rules"]:
        w(f"  rules that match (precedence: {' > '.join(x['precedence']['layers'])}, "
          f"tie {x['precedence']['tie']}):\n")
        for r in x["rules"]:
            mark = "*" if r["winner"] else ("-" if r["in_force"] else "x")
            extra = f" priority={r['priority']}" if r["layer"] == "group" else ""
            state = "in force" if r["in_force"] else r["inactive"]
            w(f"   {mark} {r['rule']} ({r['where']}): {_state(r['paused'])}, {r['matched_by']}"
              f"{extra}, {state}"
              f"{', reason: ' + repr(r['reason']) if r['reason'] else ''}"
              f"{', owner: ' + r['owner'] if r['owner'] else ''}\n")
    else:
        w("  no rule matches this DAG\n")
