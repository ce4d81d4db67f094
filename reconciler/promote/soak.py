"""The promotion's live gates (all must pass, or nothing is written).

- soak: every DAG the rule decides in the source environment is live in the desired state,
  has been for `promotion.soak_hours`, and had at most `promotion.max_failed_runs` failed runs
  since (read from the source backend: audit log and DAG runs);
- target plan: the target validates with the new file, and its plan against live Airflow
  passes the safety guards (`safety.max_changes`, no conflicts, no protected DAG changed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from reconciler.apply.gates import runs_since
from reconciler.core.errors import PausectlError
from reconciler.engine import open_backend, plan_env
from reconciler.observe import Context, Observation, observe, resolve
from reconciler.plan.model import protect_index
from reconciler.promote.select import Candidate, file_of
from reconciler.state.loader import load_config, load_env
from reconciler.state.model import DISPLAY_ALIASES, Config, EnvState


def soak_gate(cfg: Config, src: EnvState, cands: list[Candidate], at: datetime,
              commit_times: dict[str, datetime]) -> list[str]:
    """Check each candidate ran in the source environment long enough without failures.
    Sets cand.gate; returns failure messages."""
    promo = cfg.promotion or {}
    soak = float(promo.get("soak_hours", 0) or 0)
    max_failed = int(promo.get("max_failed_runs", 0) or 0)
    rules = {id(c.rule) for c in cands}

    def applied(dag, dec) -> bool:
        """A DAG a promoted rule decides, already in that state: its events tell since when."""
        return dec.rule is not None and id(dec.rule) in rules and dag.is_paused == dec.rule.paused

    failures = []
    backend = None
    try:
        backend = open_backend(cfg, src.name)
        ctx = Context(cfg, src, src.name)
        obs = observe(ctx, backend, at, events_for=applied)
        res = resolve(ctx, obs, at)
    except (PausectlError, OSError) as e:
        for c in cands:
            c.gate = {"passed": False, "message": f"cannot read {src.name}: {e}"}
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
        return [f"soak gate: cannot read {src.name}'s Airflow: {e}"] if cands else []
    try:
        for c in cands:
            dags = sorted(d for d, dec in res.decisions.items() if dec.rule is c.rule)
            msg = _soak(c, dags, obs, backend, src.name, at, soak, max_failed,
                        commit_times.get(c.name))
            if msg:
                failures.append(f"soak gate, {c.label}: {'; '.join(msg)}")
    finally:
        backend.close()
    return failures


def _soak(c: Candidate, dags: list[str], obs: Observation, backend, env: str, at: datetime,
          soak: float, max_failed: int, fallback: datetime | None) -> list[str]:
    """One candidate's soak check over the DAGs its rule decides; sets c.gate, returns what
    failed."""
    msg = []
    if not dags:
        msg.append(f"decides no DAG in {env}'s Airflow, so nothing ran")
    by_id = {d.dag_id: d for d in obs.live}
    lagging = [d for d in dags if by_id[d].is_paused != c.rule.paused]
    if lagging:
        msg.append(f"not applied in {env} yet: {', '.join(lagging[:5])}"
                   + (" ..." if len(lagging) > 5 else "")
                   + f" still {'running' if c.rule.paused else 'paused'}")
    newest: dict[str, datetime] = {}
    if dags and not lagging:
        wanted = set(dags)
        for e in obs.events or ():        # newest first
            if e.dag_id in wanted and e.dag_id not in newest:
                newest[e.dag_id] = e.when
    since_by_dag = {d: newest.get(d) or fallback for d in dags}
    unknown = [d for d, s in since_by_dag.items() if s is None]
    if unknown and not lagging:
        msg.append(f"cannot tell since when {', '.join(unknown[:5])} ran this way")
    failed = {}
    ran_for = None
    if dags and not lagging and not unknown:
        since = max(since_by_dag.values())
        ran_for = (at - since).total_seconds() / 3600
        if ran_for < soak:
            msg.append(f"ran {ran_for:.2f}h in {env}, less than promotion.soak_hours {soak:g}")
        # the runs of every DAG since the earliest change, in one batched read (gates.py)
        runs = runs_since(backend, list(dags), min(since_by_dag.values()))
        for d in dags:
            n = sum(1 for r in runs[d] if r.state == "failed"
                    and (r.start_date or r.run_after or since) >= since_by_dag[d])
            if n:
                failed[d] = n
        total = sum(failed.values())
        if total > max_failed:
            msg.append(f"{total} failed run(s) in {env} since the change "
                       f"({', '.join(f'{d}: {n}' for d, n in sorted(failed.items()))}) "
                       f"> promotion.max_failed_runs {max_failed}")
    c.gate = {"passed": not msg, "dags": len(dags), "soak_hours": soak,
              "ran_hours": None if ran_for is None else round(ran_for, 3),
              "failed_runs": failed,
              "message": "; ".join(msg) or (
                  f"ran {ran_for:.2f}h in {env} (promotion.soak_hours {soak:g}) on "
                  f"{len(dags)} DAG(s), {sum(failed.values())} failed run(s)")}
    return msg


def target_gate(cfg_root: Path, target: str, target_rel: str, new_text: str, at: datetime,
                promoted: list[Candidate]) -> tuple[dict | None, list[str]]:
    """Validate the target with the new file in a scratch copy of the state repo and plan it
    against live Airflow; the safety guards decide."""
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pausectl-promote-") as tmp:
        scratch = Path(tmp) / "state"
        shutil.copytree(cfg_root, scratch, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", ".pausectl"))
        (scratch / target_rel).write_text(new_text, encoding="utf-8")
        DISPLAY_ALIASES[str(scratch.resolve())] = str(cfg_root_display(cfg_root))
        try:
            try:
                cfg = load_config(scratch.resolve())
                state = load_env(cfg, target, now=at)
            except PausectlError as e:
                return None, [f"target gate: {target} does not validate with the promoted "
                              f"rules: {e}"]
            backend = None
            try:
                backend = open_backend(cfg, target)
                plan, resolution, live = plan_env(Context(cfg, state, target), backend, at=at)
            except (PausectlError, OSError) as e:
                return None, [f"target gate: cannot plan {target} against its Airflow: {e}"]
            finally:
                if backend is not None:
                    with contextlib.suppress(Exception):
                        backend.close()
            summary = plan.summary()
            if plan.conflicts:
                failures.append(f"target gate: {len(plan.conflicts)} conflict(s) in {target}'s "
                                "plan (tie: error)")
            limit = cfg.max_changes
            if limit is not None and len(plan.changes) > limit:
                failures.append(f"target gate: {target}'s plan changes {len(plan.changes)} "
                                f"DAGs, more than safety.max_changes ({limit})")
            protect = protect_index(cfg, state)
            labels = {c.label for c in promoted}
            hit = []
            if protect:
                for d, dec in resolution.decisions.items():
                    if dec.rule is not None and dec.rule.label() in labels \
                            and file_of(dec.rule.where).endswith(target_rel) \
                            and protect.lookup(d, (), ()):
                        hit.append(d)
            if hit:
                failures.append(f"target gate: promoted rules decide protected DAG(s) "
                                f"{', '.join(sorted(hit)[:10])} (safety.protect): change them "
                                f"in {target}'s file by hand, reviewed")
            return ({"summary": summary, "changes": [
                {"dag_id": c.dag_id, "action": c.action, "rule": c.rule_name}
                for c in plan.changes]}, failures)
        finally:
            DISPLAY_ALIASES.pop(str(scratch.resolve()), None)


def cfg_root_display(root: Path) -> str:
    try:
        return os.path.relpath(root.resolve(), Path.cwd())
    except ValueError:  # pragma: no cover
        return str(root)
