"""One Observation: what live Airflow looks like, read once, and `resolve` on top of it.

    obs = observe(ctx, backend, at)            # list_dags, emergency marker, cascade edges,
                                               # audit events + auto-pause evidence
    res = resolve(ctx, obs, at)                # rules -> decisions (cached per ctx and at)

Every consumer takes these two objects instead of calling the backend or the resolver itself:
plan (engine.plan_observed), explain, doctor, lint, schedule and drift. A command never
resolves on its own, so they cannot disagree (issue 13: doctor said "no rule decides" for a
DAG plan paused through a cascade, because doctor resolved without the cascade edges).

`events_for` chooses the DAGs whose audit events (and auto-pause evidence) are read; it is a
predicate `(LiveDag, Decision) -> bool`, or None for no events:
- DIFFERING (default): the DAGs whose decision differs from live (plan, drift);
- PAUSED: every paused DAG (lint);
- only(dag_id): one DAG when it is paused live or in git (doctor).

How diff (operate/diff.py) and promote (promote/flow.py) switch to this API:
- diff: `obs = observe(Context(hcfg, hstate, env), backend, at, events_for=None)` once, then
  `resolve(Context(bcfg, bstate, env), obs, at, dags=universe)` for the base side and the same
  with the head context; `engine.plan_observed(head_ctx, obs, at, desired_ref)` instead of
  plan_env for the head plan (no second list_dags).
- promote: `obs = observe(Context(cfg, src, src.name), backend, at, events_for=pred)` where
  `pred` selects the promoted DAGs, then `resolve(...)` and `obs.events` instead of
  `read_emergency` + `resolve` + `backend.audit_events`; `plan_observed` for the target plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import compress, repeat
from operator import and_, attrgetter, is_not, ne
from typing import Callable, Iterable, Mapping

from reconciler.core.errors import PausectlError
from reconciler.live.base import (AssetEdge, AuditEvent, Backend, ImpactReads, LiveDag,
                                  ScopedListing)
from reconciler.policy.cascade import all_edges, load_edges
from reconciler.policy.resolve import Decision, Emergency, Resolution
from reconciler.policy.resolve import resolve as resolve_rules
from reconciler.state.loader import Config, EnvState

EventsFor = Callable[[LiveDag, Decision], bool]


@dataclass
class Context:
    """Everything a command needs about one environment (loaded by engine.load)."""

    cfg: Config
    state: EnvState
    env: str


def DIFFERING(dag: LiveDag, dec: Decision) -> bool:
    """Git decides the DAG and live differs (what plan and drift explain with events)."""
    return dec.paused is not None and dec.paused != dag.is_paused


def differing(dags: Iterable[LiveDag], decisions: Mapping[str, Decision]) -> list[LiveDag]:
    """The DAGs DIFFERING selects, in order, tested for all at once in C (100k DAGs)."""
    dags = list(dags)
    want = list(map(_PAUSED, map(decisions.__getitem__, map(_DAG_ID, dags))))
    mask = map(and_, map(ne, want, map(_IS_PAUSED, dags)), map(is_not, want, repeat(None)))
    return list(compress(dags, mask))


_DAG_ID, _PAUSED, _IS_PAUSED = attrgetter("dag_id"), attrgetter("paused"), attrgetter("is_paused")


def PAUSED(dag: LiveDag, dec: Decision) -> bool:
    """Paused live, stale or not (lint: who paused it, Airflow's own pauses)."""
    return bool(dag.is_paused)


def only(dag_id: str) -> EventsFor:
    """One DAG, when it is paused live or in git (doctor: who paused it)."""
    return lambda dag, dec: dag.dag_id == dag_id and bool(dag.is_paused or dec.paused)


@dataclass(frozen=True)
class Observation:
    """Live state of one environment at one moment, read once (see the module doc)."""

    env: str
    at: datetime
    live: tuple[LiveDag, ...]
    emergency: Emergency | None
    edges: tuple[AssetEdge, ...]
    events: tuple[AuditEvent, ...] | None = None   # None: not read; newest first
    auto: Mapping[str, object] = field(default_factory=dict)   # dag_id -> autopause.AutoPause
    unread: tuple[str, ...] = ()      # what could not be read, and why (tolerant observe)
    holds: object = None              # policy.holds.HoldView: `pausectl hold`s, in force or not
    in_flight: Mapping[str, int] | None = None   # runs in flight of the DAGs a drain pauses
    desired_ref: str | None = None
    # issue 15, read only with observe(impact=True) and only for the DAGs the plan flips:
    evidence: Mapping[str, object] = field(default_factory=dict)  # dag_id -> ImpactEvidence
    impact_edges: tuple = ()          # every dependency edge (for sensors/consumers that wait)
    impact_notes: tuple[str, ...] = ()   # what the preview could not read
    edge_notes: tuple[str, ...] = ()  # Airflow's dependency graph not read (a plan warning)
    _resolved: dict = field(default_factory=dict, compare=False, repr=False)

    def dag(self, dag_id: str) -> LiveDag | None:
        return next((d for d in self.live if d.dag_id == dag_id), None)

    def last_events(self) -> dict[str, AuditEvent]:
        """The newest pause event per DAG among the events read."""
        from reconciler.plan.model import last_events
        return last_events(list(self.events or ()))


def read_emergency(backend: Backend, env: str) -> Emergency | None:
    """The emergency marker of an environment, if one is active (apply/emergency.py)."""
    from reconciler.apply.emergency import load_marker
    return load_marker(backend, env)


def observe(ctx: Context, backend: Backend, at: datetime, *,
            events_for: EventsFor | None = DIFFERING, live: Iterable[LiveDag] | None = None,
            desired_ref: str | None = None, tolerant: bool = False,
            journal_mirror: bool = False, impact: bool = False,
            scoped: bool = False) -> Observation:
    """Read everything a command needs from `backend` once. `live`: DAGs already listed.
    `tolerant`: an audit log that cannot be read is noted in `unread` instead of raised
    (doctor keeps diagnosing). Events of pausectl's own writes, recognised from its journals,
    come marked `via="pausectl"` (own_changes.py); `journal_mirror`: also from the journal
    mirrored in Airflow when none is local (one Variable read; drift). `impact`: also the
    impact preview's evidence for the DAGs whose decision differs (plan, diff). `scoped`:
    list only the DAGs this state's rules can match when nothing else is in the plan
    (policy/scope.py; plan and apply, whose output is then the same; not drift or diff)."""
    emergency = read_emergency(backend, ctx.env)
    holds = None
    if live is None and scoped and emergency is None and isinstance(backend, ScopedListing):
        from reconciler.policy.holds import read
        holds = read(backend, ctx.env)      # read once: the scope includes held DAGs
        live = _scoped_listing(ctx, backend, tuple(holds[0]))
    dags = tuple(backend.list_dags() if live is None else live)
    notes: list[str] = []
    obs = Observation(ctx.env, at, dags, emergency,
                      tuple(load_edges(ctx.state, backend, notes)), desired_ref=desired_ref,
                      edge_notes=tuple(notes))
    obs = _holds_and_drains(ctx, obs, backend, at, holds)   # `held`: read already
    if impact:
        obs = _impact_evidence(ctx, backend, obs)
    if events_for is None:
        return obs
    res = resolve(ctx, obs, at)
    wanted = ([d.dag_id for d in differing(dags, res.decisions)] if events_for is DIFFERING
              else [d.dag_id for d in dags if events_for(d, res.decisions[d.dag_id])])
    if not wanted:
        return replace(obs, events=())
    try:
        events = backend.audit_events(wanted)
    except Exception as e:  # noqa: BLE001 - tolerant: any backend failure is a note for doctor
        if not tolerant:
            raise
        return replace(obs, events=(), unread=(f"audit log not read: {e}",))
    from reconciler.operate.own_changes import recognise
    events = recognise(ctx.env, events, dags, backend if journal_mirror else None)
    # Airflow's own pauses: their failed runs and the deciding rule's git history
    from reconciler.live.autopause import detect
    obs = replace(obs, events=tuple(events))
    return replace(obs, auto=detect(backend, list(dags), res, obs.last_events(), desired_ref))


def _scoped_listing(ctx: Context, backend: ScopedListing,
                    held: tuple[str, ...]) -> list[LiveDag] | None:
    """Only what the rules can match, and the held DAGs (a plan shows a hold even on an
    unmanaged DAG); None when the state can match more (policy/scope.py)."""
    from reconciler.policy.scope import listing_terms
    terms = listing_terms(ctx.state, backend.scope_terms_limit(), held)
    return None if terms is None else backend.list_dags_matching(terms)


def _holds_and_drains(ctx: Context, obs: Observation, backend: Backend,
                      at: datetime, held: tuple | None = None) -> Observation:
    """The holds Variable (one read), and the runs in flight of the DAGs a `paused: drain`
    rule pauses now (one batched read, only when the state has a drain rule)."""
    from reconciler.policy.holds import HoldView, read
    holds, warnings = read(backend, ctx.env) if held is None else held
    view = HoldView.of(holds, at, warnings)
    in_flight = None
    if any(r.drain is not None for r in ctx.state.all_rules()):
        decisions = resolve(ctx, obs, at).decisions
        ids = [d.dag_id for d in obs.live if not d.is_paused and decisions[d.dag_id].paused
               and decisions[d.dag_id].rule.drain is not None]
        from reconciler.apply.drain import in_flight as read_in_flight
        in_flight = read_in_flight(backend, ids) if ids else {}
    return replace(obs, holds=view, in_flight=in_flight)


def _impact_evidence(ctx: Context, backend: Backend, obs: Observation) -> Observation:
    """ImpactEvidence of the DAGs git flips (schedules only for the unpauses), and every
    dependency edge when a pause needs them and no cascade read them already. Nothing is read
    for a plan without changes; a server that cannot answer is a note of the preview."""
    if not isinstance(backend, ImpactReads):     # a snapshot: nothing to read
        return obs
    res = resolve(ctx, obs, obs.at)
    flips = [d for d in differing(obs.live, res.decisions) if not d.is_stale]
    if not flips:
        return obs
    notes: list[str] = []
    evidence: Mapping[str, object] = {}
    edges = obs.edges
    try:
        from reconciler.plan.impact import detail_order
        evidence = backend.impact_evidence(     # details of the unpauses: capped (impact.py)
            [d.dag_id for d in flips], detail_order(flips, obs.at),
            max_details=getattr(ctx.cfg, "max_detail_reads", None))
        # pauses: who waits on them; two or more unpauses: their order (coordinated unpause)
        if not edges and (any(not d.is_paused for d in flips)
                          or sum(d.is_paused for d in flips) > 1):
            edges = tuple(all_edges(ctx.state, backend, notes))
    except PausectlError as e:      # BackendError too: the plan goes on without the preview
        notes.append(f"impact preview incomplete: {e.message}")
    return replace(obs, evidence=evidence, impact_edges=tuple(edges), impact_notes=tuple(notes))


def resolve(ctx: Context, obs: Observation, at: datetime | None = None,
            dags: Iterable[LiveDag] | None = None) -> Resolution:
    """Decisions for every observed DAG (or only `dags`) at `at` (default: the observation's).
    Whole-environment results are cached: every consumer of one observation shares them."""
    at = obs.at if at is None else at
    if dags is not None:
        return resolve_rules(ctx.cfg, ctx.state, list(dags), at, obs.emergency, list(obs.edges))
    key = (id(ctx.cfg), id(ctx.state), at)
    hit = obs._resolved.get(key)
    if hit is not None and hit[0] is ctx.cfg and hit[1] is ctx.state:
        return hit[2]
    res = resolve_rules(ctx.cfg, ctx.state, list(obs.live), at, obs.emergency, list(obs.edges))
    obs._resolved[key] = (ctx.cfg, ctx.state, res)
    return res
