"""The one-way flow, wired: load -> resolve -> observe -> plan. Commands call these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.live.base import Backend, LiveDag
from reconciler.core.errors import PausectlError
from reconciler.plan.model import Plan, build_plan
from reconciler.policy.resolve import Emergency, Resolution, resolve
from reconciler.state.loader import Config, EnvState, find_root, load_config, load_env
from reconciler.core.timeutil import utcnow


def open_backend(cfg: Config, env: str) -> Backend:
    """The backend of an environment, as configured in pausectl.yaml."""
    spec = cfg.env(env).backend
    kind = spec["type"]
    from reconciler.core.paths import confine
    at = ("environments", env, "backend")
    if kind == "snapshot":
        from reconciler.live.snapshot import SnapshotBackend
        path = cfg.root / spec["path"]
        real = confine(spec["path"], cfg.root, doc=cfg.doc, at=at + ("path",),
                       what="snapshot path")
        return SnapshotBackend(env, real, cfg.rel(path))
    if kind == "airflow-api":
        from reconciler.live.airflow_api import AirflowApiBackend
        if spec.get("ca_bundle") is not None:   # a file of the state repo, like any other
            spec = dict(spec, ca_bundle=str(confine(spec["ca_bundle"], cfg.root, doc=cfg.doc,
                                                    at=at + ("ca_bundle",), what="ca_bundle")))
        return AirflowApiBackend(env, spec)
    if kind == "dagmodel":
        from reconciler.live.dagmodel import DagModelBackend
        return DagModelBackend(env, spec)
    raise PausectlError(f"unknown backend type {kind!r}", *_where(cfg, env, "type"))


def _where(cfg: Config, env: str, key: str):
    doc = cfg.doc
    line, col = doc.mark(("environments", env, "backend", key))
    return doc.path, line, col


@dataclass
class Context:
    """Everything a command needs about one environment."""

    cfg: Config
    state: EnvState
    env: str


def load(state_dir: str | Path | None, env: str, at: datetime | None = None) -> Context:
    root = find_root(state_dir)
    cfg = load_config(root)
    cfg.env(env)
    return Context(cfg, load_env(cfg, env, now=at or utcnow()), env)


def read_emergency(backend: Backend, env: str) -> Emergency | None:
    """The emergency marker of an environment, if one is active (see emergency.py)."""
    try:
        from reconciler.apply.emergency import load_marker
    except ImportError:  # pragma: no cover
        return None
    return load_marker(backend, env)


def plan_env(ctx: Context, backend: Backend, at: datetime | None = None,
             desired_ref: str | None = None, with_events: bool = True,
             live: list[LiveDag] | None = None) -> tuple[Plan, Resolution, list[LiveDag]]:
    at = at or utcnow()
    live = backend.list_dags() if live is None else live
    emergency = read_emergency(backend, ctx.env)
    from reconciler.policy.cascade import load_edges
    from reconciler.policy.tenants import enforce
    enforce(ctx.cfg, ctx.state, live)      # a rule crossing tenants: error at its file:line
    resolution = resolve(ctx.cfg, ctx.state, live, at, emergency, load_edges(ctx.state, backend))
    events = None
    auto = None
    if with_events:
        differing = [d.dag_id for d in live
                     if (dec := resolution.decisions[d.dag_id]).paused is not None
                     and dec.paused != d.is_paused]
        if differing:
            events = backend.audit_events(differing)
            # Airflow's own pauses (drift.auto_paused): their failed runs and rule history
            from reconciler.live.autopause import detect
            auto = detect(backend, live, resolution, events, desired_ref)
    plan = build_plan(ctx.cfg, ctx.state, live, resolution, at, desired_ref, events, auto)
    from reconciler.plan.rollout import batches_json, effective_rollout, plan_batches
    plan.batches = batches_json(plan_batches(plan.changes, effective_rollout(
        ctx.cfg.rollout_for(ctx.env)), live))
    if emergency is not None:
        plan.emergency = emergency.started
        plan.warnings.insert(0, f"EMERGENCY active since {emergency.started}: {emergency.reason} "
                                f"({emergency.owner}); only `pausectl emergency recover` ends it")
    return plan, resolution, live
