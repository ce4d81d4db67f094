"""The one-way flow, wired: load -> observe -> resolve -> plan (observe.py). Commands call these."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from reconciler.live.base import Backend, LiveDag
from reconciler.core.errors import PausectlError
from reconciler.plan.model import Plan, build_plan
from reconciler.observe import DIFFERING, Context, Observation, observe, resolve
from reconciler.observe import read_emergency  # noqa: F401 - kept importable from engine
from reconciler.policy.resolve import Resolution
from reconciler.state.loader import Config, find_root, load_config, load_env
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


def load(state_dir: str | Path | None, env: str, at: datetime | None = None) -> Context:
    root = find_root(state_dir)
    cfg = load_config(root)
    cfg.env(env)
    return Context(cfg, load_env(cfg, env, now=at or utcnow()), env)


def plan_env(ctx: Context, backend: Backend, at: datetime | None = None,
             desired_ref: str | None = None, with_events: bool = True,
             live: list[LiveDag] | None = None,
             rollout: dict | None = None) -> tuple[Plan, Resolution, list[LiveDag]]:
    """Observe, resolve and plan one environment (observe.py), in one call."""
    at = at or utcnow()
    obs = observe(ctx, backend, at, events_for=DIFFERING if with_events else None, live=live,
                  desired_ref=desired_ref, impact=True, scoped=True)
    plan, resolution = plan_observed(ctx, obs, at, desired_ref, rollout=rollout)
    return plan, resolution, list(obs.live)


def plan_observed(ctx: Context, obs: Observation, at: datetime | None = None,
                  desired_ref: str | None = None,
                  rollout: dict | None = None) -> tuple[Plan, Resolution]:
    """The plan of one observation (callers that also use the observation: drift), frozen
    with the batches of `rollout` (the run's, resolved once; default pausectl.yaml's)."""
    at = obs.at if at is None else at
    from reconciler.policy.tenants import enforce
    live = list(obs.live)
    enforce(ctx.cfg, ctx.state, live)      # a rule crossing tenants: error at its file:line
    resolution = resolve(ctx, obs, at)
    emergency = obs.emergency
    events = None if obs.events is None else list(obs.events)
    auto = dict(obs.auto) or None
    plan = build_plan(ctx.cfg, ctx.state, live, resolution, at, desired_ref, events, auto,
                      holds=obs.holds, in_flight=obs.in_flight)
    if emergency is not None:
        plan.emergency = emergency.started
        plan.warnings.insert(0, f"EMERGENCY active since {emergency.started}: {emergency.reason} "
                                f"({emergency.owner}); only `pausectl emergency recover` ends it")
    from reconciler.plan.impact import attach
    levels = attach(plan, obs, at)     # the impact preview, and the coordinated unpause order
    from reconciler.plan.rollout import resolve_rollout
    plan.freeze(resolve_rollout(ctx.cfg, ctx.env) if rollout is None else rollout, live, levels)
    return plan, resolution
