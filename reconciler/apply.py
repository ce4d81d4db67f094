"""Apply a plan: guards, lock, staged batches with health gates, journal, rollback, resume.

Only the DAGs in the plan are ever touched. Every step is journaled before it happens, and
setting is_paused is idempotent, so resume and rollback are exact replays of the journal.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from .errors import GateFailed, PausectlError
from .gates import evaluate, gate_settings
from .journal import Journal
from .lock import EnvLock
from .plan import Plan
from .rollout import make_batches
from .timeutil import utcnow


@dataclass
class ApplyOptions:
    batches: object = None            # override rollout.batches ("1,25%,100%" or a list)
    allow_mass_change: bool = False
    gates: bool = True
    mirror_journal: bool = False      # also keep the journal in an Airflow Variable
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))
    progress: bool = False            # rich progress bar (terminal only)


@dataclass
class ApplyResult:
    status: str                        # done | rolled_back | halted | failed | nothing
    journal: Journal | None
    changed: int = 0
    errors: dict = field(default_factory=dict)
    gates: list = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"done": 0, "nothing": 0, "rolled_back": 3, "halted": 3}.get(self.status, 1)


def check_guards(ctx, plan: Plan, opts: ApplyOptions) -> None:
    limit = ctx.cfg.max_changes
    n = len(plan.changes)
    if limit is not None and n > limit and not opts.allow_mass_change:
        raise PausectlError(f"plan changes {n} DAGs, more than safety.max_changes ({limit}); "
                            "re-run with --allow-mass-change if that is intended")
    if plan.conflicts:
        raise PausectlError(f"plan has {len(plan.conflicts)} conflict(s) (tie: error); "
                            "resolve them in git first")


def apply_plan(ctx, backend, plan: Plan, opts: ApplyOptions,
               live_tags: dict | None = None, live_owners: dict | None = None) -> ApplyResult:
    check_guards(ctx, plan, opts)
    if not plan.changes:
        return ApplyResult("nothing", None)
    rollout = ctx.cfg.rollout_for(ctx.env)
    spec = opts.batches if opts.batches is not None else rollout.get("batches")
    batches = make_batches(plan.changes, spec, rollout.get("canary"), live_tags, live_owners)
    with EnvLock(backend, ctx.env):
        journal = Journal.start(ctx.env, plan.to_json(), batches,
                                backend if opts.mirror_journal else None)
        opts.log(f"journal: {journal.path}")
        return run_batches(ctx, backend, journal, opts)


def run_batches(ctx, backend, journal: Journal, opts: ApplyOptions) -> ApplyResult:
    """Apply every batch not yet applied, gating between them. Used by apply and resume."""
    rollout = ctx.cfg.rollout_for(ctx.env)
    settings = gate_settings(rollout)
    on_failure = rollout.get("on_gate_failure", "rollback")
    result = ApplyResult("done", journal)
    dags = journal.data["dags"]
    batches = journal.data["batches"]
    total = len(dags)
    bar = _Progress(total, opts.progress)
    bar.advance(sum(len(b["dag_ids"]) for b in batches if b["status"] == "applied"))
    try:
        for b in batches:
            if b["status"] == "applied":
                continue
            i = b["index"]
            ids = b["dag_ids"]
            opts.log(f"batch {i + 1}/{len(batches)}: {len(ids)} DAG(s)")
            started = utcnow()
            journal.set_batch(i, "applying")
            errors = _set(backend, [(d, dags[d]["after"]) for d in ids], bar.advance)
            if errors:
                result.errors.update(errors)
                journal.data["errors"] = errors
                journal.set_batch(i, "failed")
                journal.finish("failed")
                result.status = "failed"
                for d, e in sorted(errors.items()):
                    opts.log(f"error: {e}")
                opts.log(f"apply stopped at batch {i + 1}; `pausectl apply {ctx.env} --resume` "
                         f"retries, `pausectl rollback {ctx.env}` undoes")
                return result
            result.changed += len(ids)
            unpaused = [d for d in ids if dags[d]["after"] is False]
            if opts.gates and unpaused and _has_gate(settings):
                gate = evaluate(backend, unpaused, started, settings, sleep=opts.sleep, log=opts.log)
                gate["batch"] = i
                result.gates.append(gate)
                journal.set_batch(i, "applied" if gate["passed"] else "gate_failed", gate)
                opts.log(f"gate after batch {i + 1}: {'passed' if gate['passed'] else 'FAILED'}"
                         f" ({gate['message']})")
                if not gate["passed"]:
                    if on_failure == "rollback":
                        rollback(backend, journal, opts)
                        result.status = "rolled_back"
                    else:
                        journal.finish("halted")
                        result.status = "halted"
                        opts.log(f"halted; `pausectl apply {ctx.env} --resume` continues after "
                                 f"a fix, `pausectl rollback {ctx.env}` undoes")
                    return result
            else:
                journal.set_batch(i, "applied")
        journal.finish("done")
        return result
    finally:
        bar.close()


def _has_gate(settings: dict) -> bool:
    return True  # import errors and stale DAGs are checked even without a wait


def _set(backend, targets: list[tuple[str, bool]], advance) -> dict[str, str]:
    errors: dict[str, str] = {}
    for paused in (True, False):
        ids = [d for d, p in targets if p is paused]
        if ids:
            res = backend.set_paused(ids, paused, progress=advance)
            errors.update(res.errors)
    return errors


def rollback(backend, journal: Journal, opts: ApplyOptions) -> dict[str, str]:
    """Put every DAG of every started batch back to its state before the apply."""
    started = journal.started_dags()
    opts.log(f"rolling back {len(started)} DAG(s) to their prior state")
    errors = _set(backend, [(d, v["before"]) for d, v in started.items()], lambda n: None)
    if errors:
        journal.data["rollback_errors"] = errors
        journal.finish("rollback_failed")
        raise PausectlError(f"rollback incomplete: {len(errors)} DAG(s) failed "
                            f"(first: {next(iter(errors.values()))}); run `pausectl rollback "
                            f"{journal.data['environment']}` again")
    journal.finish("rolled_back")
    return errors


def resume(ctx, backend, journal: Journal, opts: ApplyOptions) -> ApplyResult:
    if journal.status in ("done", "rolled_back"):
        raise PausectlError(f"journal {journal.path} is {journal.status}; nothing to resume")
    with EnvLock(backend, ctx.env):
        journal.data["status"] = "running"
        journal.event("resumed")
        for b in journal.data["batches"]:
            if b["status"] in ("applying", "failed", "gate_failed"):
                b["status"] = "pending"  # replay it: setting is_paused again is harmless
        journal.save()
        return run_batches(ctx, backend, journal, opts)


def rollback_journal(ctx, backend, journal: Journal, opts: ApplyOptions) -> None:
    if journal.status == "rolled_back":
        raise PausectlError(f"journal {journal.path} is already rolled back")
    with EnvLock(backend, ctx.env):
        # a finished apply is undone whole; a dead one, up to the batch it reached
        if journal.status == "done":
            for b in journal.data["batches"]:
                b["status"] = "applied"
        rollback(backend, journal, opts)


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, total: int, enabled: bool):
        self._p = None
        if enabled and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
            self._p = Progress("[progress.description]{task.description}", BarColumn(),
                               MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
            self._p.start()
            self._task = self._p.add_task("applying", total=total)

    def advance(self, n: int) -> None:
        if self._p is not None and n:
            self._p.advance(self._task, n)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


__all__ = ["ApplyOptions", "ApplyResult", "apply_plan", "resume", "rollback_journal", "GateFailed"]
