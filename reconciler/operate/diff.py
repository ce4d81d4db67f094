"""`pausectl diff BASE HEAD [ENV...]`: what a change to the state repo does, per environment and
per DAG: the desired pause state and the deciding rule at BASE and at HEAD (with reason and
owner), joined with the environment's live plan at HEAD when its backend answers.

Both refs are resolved against the same DAG list: the environment's live DAGs (from its backend
as configured at HEAD) when reachable. When it is not, the DAG ids named by dag entries (and
exact dag_ids in group selectors) stand in, and the result says so: a group matching by tags or
globs cannot be evaluated without the live DAG list.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from datetime import datetime

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import iso, utcnow
from reconciler.engine import open_backend, plan_observed
from reconciler.live.base import LiveDag
from reconciler.observe import DIFFERING, Context, Observation, observe, resolve
from reconciler.policy.selectors import is_glob
from reconciler.state.gitref import RefTree, changed_paths, materialise, resolve_commit, state_location
from reconciler.state.loader import load_config, load_env
from reconciler.state.model import CONFIG_FILE, Rule

KINDS = ("pause", "unpause", "rule", "managed", "unmanaged", "conflict")


@dataclass
class Side:
    """What one ref says about one DAG."""

    paused: bool | None = None
    rule: str | None = None          # file:line
    label: str | None = None         # "dag entry x", "group y", "defaults"
    reason: str | None = None
    owner: str | None = None
    ticket: str | None = None
    status: str = "managed"          # managed | unmanaged | conflict | absent

    def state_word(self) -> str:
        if self.status != "managed":
            return self.status
        return "paused" if self.paused else "running"

    def to_json(self) -> dict:
        return {"status": self.status, "paused": self.paused, "rule": self.rule,
                "rule_name": self.label, "reason": self.reason, "owner": self.owner,
                "ticket": self.ticket}


@dataclass
class DagDiff:
    dag_id: str
    kind: str                        # see KINDS
    old: Side
    new: Side
    in_airflow: bool | None = True   # None: live state unknown
    live_paused: bool | None = None
    apply: str | None = None         # what apply at HEAD does: pause | unpause | held | skipped | none

    def to_json(self) -> dict:
        return {"dag_id": self.dag_id, "change": self.kind, "old": self.old.to_json(),
                "new": self.new.to_json(), "in_airflow": self.in_airflow,
                "live_paused": self.live_paused, "apply": self.apply}


@dataclass
class EnvDiff:
    environment: str
    live_source: str = "backend"     # backend | rules-only | none
    live_dags: int = 0
    notes: list[str] = field(default_factory=list)
    changes: list[DagDiff] = field(default_factory=list)
    plan_summary: dict | None = None
    error: str | None = None

    def counts(self) -> dict:
        out = {k: 0 for k in KINDS}
        for c in self.changes:
            out[c.kind] += 1
        return out

    def to_json(self) -> dict:
        return {"environment": self.environment, "live_source": self.live_source,
                "live_dags": self.live_dags, "notes": self.notes, "summary": self.counts(),
                "plan_summary": self.plan_summary, "error": self.error,
                "changes": [c.to_json() for c in self.changes]}


@dataclass
class DiffResult:
    base: str
    head: str
    at: str
    environments: list[EnvDiff]

    @property
    def total(self) -> int:
        return sum(len(e.changes) for e in self.environments)

    def to_json(self) -> dict:
        return {"base": self.base, "head": self.head, "at": self.at, "total_changes": self.total,
                "environments": [e.to_json() for e in self.environments]}


# ---- computing ---------------------------------------------------------------------------

def _rule_identity(r: Rule | None):
    """What makes two rules 'the same rule' across refs: content, file, but not the line."""
    if r is None:
        return None
    file = r.where.rpartition(":")[0] if r.where else ""
    return (file, r.layer, r.name, r.paused, r.reason, r.owner, r.ticket, r.until, r.from_,
            tuple((w.cron, w.duration, w.timezone) for w in r.windows), r.priority)


def _side(dec) -> Side:
    if dec is None:
        return Side(status="absent")
    if dec.conflict:
        return Side(status="conflict", rule=" vs ".join(r.where for r in dec.conflict),
                    label="tie")
    if dec.unmanaged or dec.rule is None:
        return Side(status="unmanaged")
    r = dec.rule
    return Side(paused=dec.paused, rule=r.where, label=r.label(), reason=r.reason,
                owner=r.owner, ticket=r.ticket)


def _kind(old: Side, new: Side) -> str | None:
    if new.status == "conflict":
        return "conflict" if old.status != "conflict" or old.rule != new.rule else None
    if new.status in ("unmanaged", "absent"):
        return "unmanaged" if old.status == "managed" else None
    if old.status != "managed":
        return "managed"
    if old.paused != new.paused:
        return "pause" if new.paused else "unpause"
    return "rule"


def named_dag_ids(state) -> set[str]:
    """DAG ids a state names literally: dag entries and exact ids in group selectors."""
    out = set(state.dag_rules)
    for g in state.groups:
        for p in getattr(g.selector, "dag_ids", ()) or ():
            if not is_glob(p):
                out.add(p)
    return out


def _load(tree: RefTree | None, env: str, at: datetime):
    """(cfg, state) of env at a ref; (cfg, None) when the env does not exist there."""
    if tree is None:
        return None, None
    cfg = load_config(tree.root)
    if env not in cfg.environments:
        return cfg, None
    return cfg, load_env(cfg, env, now=at)


def _live(cfg, env: str, offline: bool):
    """(backend or None, live dags or None, note)."""
    if offline:
        return None, None, "live state not read (--offline)"
    backend = None
    try:
        backend = open_backend(cfg, env)
        return backend, backend.list_dags(), None
    except (PausectlError, OSError) as e:
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
        return None, None, f"backend unreachable ({e})"


def _observe(ctx: Context | None, backend, live, at: datetime, out: EnvDiff,
             head_ref: str | None = None) -> Observation | None:
    """One side's observation of the environment (the DAGs already listed): the head's with
    audit events for its live plan (head_ref: its label), the base's without. None when there
    is nothing to read."""
    if ctx is None or backend is None:
        return None
    try:
        return observe(ctx, backend, at, events_for=DIFFERING if head_ref else None,
                       live=live, desired_ref=head_ref, impact=head_ref is not None)
    except PausectlError as e:
        out.notes.append(f"live plan failed: {e}" if head_ref else
                         f"base side read without cascade edges: {e}")
        return None


def _decide(ctx: Context | None, obs: Observation | None, universe: list[LiveDag],
            env: str, at: datetime):
    """One side's decisions for every DAG of the universe, from the desired state alone: an
    active emergency is live, not a change of the state repo, so it is left out here (the
    live plan at head shows it)."""
    if ctx is None:
        return None
    obs = Observation(env, at, (), None, ()) if obs is None else replace(obs, emergency=None)
    return resolve(ctx, obs, at, dags=universe)


def diff_env(env: str, base: RefTree | None, head: RefTree, at: datetime,
             offline: bool = False) -> EnvDiff:
    out = EnvDiff(env)
    bcfg, bstate = _load(base, env, at)
    hcfg, hstate = _load(head, env, at)
    if hstate is None and bstate is None:
        raise PausectlError(f"unknown environment {env!r} at both refs")
    if bstate is None:
        out.notes.append("new environment: it does not exist at the base ref")
    if hstate is None:
        out.notes.append("environment removed at the head ref")
    bctx = Context(bcfg, bstate, env) if bstate is not None else None
    hctx = Context(hcfg, hstate, env) if hstate is not None else None
    backend, live, note = _live(hcfg if hstate is not None else bcfg, env, offline)
    try:
        named = set()
        for s in (bstate, hstate):
            if s is not None:
                named |= named_dag_ids(s)
        if live is None:
            out.live_source = "rules-only" if not offline else "none"
            out.notes.append(f"{note}: compared only the {len(named)} DAG id(s) named by rules; "
                             "groups matching by tags, owners or globs are not evaluated")
            universe = [LiveDag(d, False) for d in sorted(named)]
            known = set()
        else:
            out.live_dags = len(live)
            known = {d.dag_id for d in live}
            universe = list(live) + [LiveDag(d, False) for d in sorted(named - known)]
        # each side its own observation: cascade edges depend on the side's rules and sensors
        hobs = _observe(hctx, backend, live, at, out, head_ref=head.label)
        bobs = _observe(bctx, backend, live, at, out)
        bres = _decide(bctx, bobs, universe, env, at)
        hres = _decide(hctx, hobs, universe, env, at)
        plan = None
        if hobs is not None:
            try:
                plan, _ = plan_observed(hctx, hobs, at, desired_ref=head.label)
                out.plan_summary = plan.summary()
                from reconciler.plan.impact_render import note_lines
                out.notes.extend(note_lines(plan))      # the impact preview (issue 15)
            except PausectlError as e:
                out.notes.append(f"live plan failed: {e}")
        actions = {}
        if plan is not None:
            actions.update({c.dag_id: c.action for c in plan.changes})
            actions.update({h["dag_id"]: "held" for h in plan.held})
            actions.update({s["dag_id"]: "skipped" for s in plan.skipped})
        live_by_id = {d.dag_id: d for d in live or ()}
        for dag in sorted(universe, key=lambda d: d.dag_id):
            bd = bres.decisions.get(dag.dag_id) if bres else None
            hd = hres.decisions.get(dag.dag_id) if hres else None
            old, new = _side(bd), _side(hd)
            if old.status == new.status == "managed" and old.paused == new.paused \
                    and _rule_identity(bd.rule) == _rule_identity(hd.rule):
                continue
            kind = _kind(old, new)
            if kind is None:
                continue
            in_af = (dag.dag_id in known) if live is not None else None
            lp = live_by_id[dag.dag_id].is_paused if in_af and dag.dag_id in live_by_id else None
            apply = None
            if plan is not None:
                apply = actions.get(dag.dag_id, "none") if in_af else "missing"
            out.changes.append(DagDiff(dag.dag_id, kind, old, new, in_af, lp, apply))
    finally:
        if backend is not None:
            backend.close()
    return out


def affected_envs(repo, bcommit, hcommit, rel: str, base: RefTree, head: RefTree,
                  at: datetime) -> list[str]:
    """Environments whose files (or pausectl.yaml) differ between the refs."""
    prefix = f"{rel}/" if rel else ""
    changed = {p[len(prefix):] for p in changed_paths(repo, bcommit, hcommit)
               if p.startswith(prefix)}
    envs: set[str] = set()
    names: set[str] = set()
    cfgs = {}
    for side, tree in (("base", base), ("head", head)):
        try:
            cfgs[side] = load_config(tree.root)
            names |= set(cfgs[side].environments)
        except PausectlError:
            if side == "head":
                raise
    if CONFIG_FILE in changed:
        return sorted(names)
    for side, tree in (("base", base), ("head", head)):
        cfg = cfgs.get(side)
        if cfg is None:
            continue
        for env in cfg.environments:
            try:
                st = load_env(cfg, env, now=at)
            except PausectlError:
                envs.add(env)     # broken on one side: it changed
                continue
            files = {tree.state_rel(f) for f in st.files}
            files.add(cfg.environments[env].file)
            spec = cfg.environments[env].backend
            if spec.get("type") == "snapshot":
                files.add(spec["path"])
            if files & changed:
                envs.add(env)
    return sorted(envs)


def compute_diff(state_dir, base_ref: str, head_ref: str, envs: list[str] | None = None,
                 at: datetime | None = None, offline: bool = False) -> DiffResult:
    at = at or utcnow()
    repo, _, rel = state_location(state_dir)
    bcommit = resolve_commit(repo, base_ref)
    hcommit = resolve_commit(repo, head_ref)
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(_materialise_or_none(state_dir, base_ref, bcommit))
        head = stack.enter_context(materialise(state_dir, head_ref, hcommit))
        if base is None:     # the state repo is new in HEAD: every environment is new
            wanted = list(envs) if envs else sorted(load_config(head.root).environments)
        else:
            wanted = list(envs) if envs else affected_envs(repo, bcommit, hcommit, rel, base,
                                                           head, at)
        out = []
        for env in wanted:
            try:
                out.append(diff_env(env, base, head, at, offline))
            except PausectlError as e:
                out.append(EnvDiff(env, live_source="none", error=str(e)))
        return DiffResult(base.label if base else f"{base_ref}@{bcommit.hexsha[:12]}",
                          head.label, iso(at), out)


@contextlib.contextmanager
def _materialise_or_none(state_dir, ref, commit):
    try:
        tree = materialise(state_dir, ref, commit)
    except PausectlError:
        yield None
        return
    try:
        yield tree
    finally:
        tree.cleanup()
