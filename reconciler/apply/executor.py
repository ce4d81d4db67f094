"""Apply a plan: guards, lock, staged batches with health gates, journal, rollback, resume.

Only the DAGs in the plan are ever touched, in exactly the plan's batches (`plan.batches`, cut
once by Plan.freeze): what `plan` showed is what runs, and the journal records it. Every step
is journaled before it happens, and setting is_paused is idempotent, so resume and rollback
are exact replays of the journal. `pausectl apply` (operations.apply_env) takes the lock
first and plans under it (like terraform), so no other apply
can move live state between plan and apply. A plan made without the lock (restore, emergency
recover, a caller of apply_plan) is re-checked under the lock: every DAG of the plan must still
be in the state the plan saw, else "before" in the journal would be wrong. Before every batch,
apply checks that it still holds the lock and that no emergency pause began meanwhile.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from reconciler.core import progress
from reconciler.core.errors import GateFailed, PausectlError
from reconciler.apply.drain import drain_batch, drain_ids, journal_drains
from reconciler.apply.gates import evaluate, gate_settings
from reconciler.apply.journal import Journal
from reconciler.core.killpoint import killpoint
from reconciler.apply.lock import EnvLock
from reconciler.plan.model import Plan
from reconciler.plan.records import ApplyKind, ApplyStatus, BatchStatus, JournalStatus
from reconciler.plan.rollout import effective_rollout, resolve_rollout
from reconciler.core.timeutil import utcnow


@dataclass
class ApplyOptions:
    batches: object = None            # override rollout.batches ("1,25%,100%" or a list)
    rollout_overrides: dict = field(default_factory=dict)  # canary, on_gate_failure, gate keys
    allow_mass_change: bool = False
    allow_catchup: bool = False       # unpauses creating more than safety.max_catchup_runs
    gates: bool = True
    mirror_journal: bool = False      # also keep the journal in an Airflow Variable
    ignore_emergency: bool = False    # emergency recover: the apply that ends the emergency
    kind: ApplyKind = ApplyKind.APPLY  # in the journal
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))
    progress: bool = False            # rich progress bar (terminal only)
    # asked before every batch; a reason stops the apply there, halted with a complete journal
    # (the controller's SIGTERM: `reconcile --watch` finishes the batch it is in, then exits)
    stop: Callable[[], str | None] = field(default=lambda: None)


@dataclass
class ApplyResult:
    status: ApplyStatus
    journal: Journal | None
    changed: int = 0
    errors: dict = field(default_factory=dict)
    gates: list = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {ApplyStatus.DONE: 0, ApplyStatus.NOTHING: 0, ApplyStatus.ROLLED_BACK: 3,
                ApplyStatus.HALTED: 3}.get(self.status, 1)


def rollout_of(ctx, opts: ApplyOptions) -> dict:
    """The rollout this run uses: pausectl.yaml's, with the run's overrides."""
    over = dict(opts.rollout_overrides or {})
    if opts.batches is not None:
        over["batches"] = opts.batches
    return resolve_rollout(ctx.cfg, ctx.env, over)


def check_guards(ctx, plan: Plan, opts: ApplyOptions) -> None:
    limit = ctx.cfg.max_changes
    n = len(plan.changes)
    if limit is not None and n > limit and not opts.allow_mass_change:
        raise PausectlError(f"plan changes {n} DAGs, more than safety.max_changes ({limit}); "
                            "re-run with --allow-mass-change if that is intended")
    if plan.conflicts:
        raise PausectlError(f"plan has {len(plan.conflicts)} conflict(s) (tie: error); "
                            "resolve them in git first")
    # the impact preview's catch-up count (plan/impact.py), before anything is changed
    from reconciler.plan.impact_render import guard_line
    limit = getattr(ctx.cfg, "max_catchup_runs", None)     # a caller's own Config may lack it
    refused = None if opts.allow_catchup else guard_line(plan, limit)
    if refused:
        raise PausectlError(refused)


def apply_plan(ctx, backend, plan: Plan, opts: ApplyOptions,
               live_tags: dict | None = None, live_owners: dict | None = None,
               live: list | None = None, lock: EnvLock | None = None) -> ApplyResult:
    """Apply `plan` in exactly its batches. With `lock` (held, and the plan made under it)
    nothing is re-checked; without, the lock is taken here and the plan re-checked against
    live state. A plan built by hand (not frozen yet) is frozen first with this run's rollout
    against `live` (or the `live_tags`/`live_owners` maps); a frozen one is never re-cut."""
    check_guards(ctx, plan, opts)
    if not plan.changes:
        return ApplyResult(ApplyStatus.NOTHING, None)
    if not plan.frozen:
        if live is None:
            live = [_Tags(d, t, (live_owners or {}).get(d, ())) for d, t in
                    (live_tags or {}).items()]
        plan.freeze(rollout_of(ctx, opts), live)
    batches = plan.batch_changes()
    # a saved plan (plan --out) carries its batches, not the gate settings: this run's
    rollout = plan.rollout or rollout_of(ctx, opts)
    if lock is not None:
        return _journaled(ctx, backend, plan, opts, batches, rollout, lock)
    with EnvLock(backend, ctx.env, log=opts.log) as lock:
        killpoint("after_lock")
        _verify_live(backend, plan)
        if not opts.ignore_emergency:
            now = _emergency_started(backend, ctx.env)
            if now is not None and now != plan.emergency:
                raise PausectlError(f"an emergency pause began in {ctx.env} at {now}, after this "
                                    "plan was made; plan again (the emergency layer now applies)")
        return _journaled(ctx, backend, plan, opts, batches, rollout, lock)


@dataclass(frozen=True)
class _Tags:
    """What batching reads of a live DAG, for callers that pass tag/owner maps."""

    dag_id: str
    tags: tuple = ()
    owners: tuple = ()


def _journaled(ctx, backend, plan, opts, batches, rollout, lock) -> ApplyResult:
    journal = Journal.start(ctx.env, plan.to_json(), batches,
                            backend if opts.mirror_journal else None,
                            rollout=rollout, emergency=plan.emergency, kind=opts.kind)
    journal_drains(journal, plan)       # paused: drain: each drained DAG's deadline
    killpoint("journal_started")
    opts.log(f"journal: {journal.path}")
    # the emergency marker was read a moment ago (by the plan, or above): batch 1 needs no re-read
    return run_batches(ctx, backend, journal, opts, lock, fresh=True)


def _verify_live(backend, plan: Plan) -> None:
    """Refuse when a DAG of the plan is no longer in the state the plan saw."""
    live = {d.dag_id: d.is_paused for d in backend.list_dags()}
    moved = [c for c in plan.changes if live.get(c.dag_id) != c.live_paused]
    if moved:
        what = ", ".join(f"{c.dag_id} ({'gone' if c.dag_id not in live else 'paused' if live[c.dag_id] else 'running'} now)"
                         for c in moved[:5])
        raise PausectlError(f"live state changed since the plan was made: {what}"
                            f"{' ...' if len(moved) > 5 else ''}; run `pausectl plan` again")


def _emergency_started(backend, env: str) -> str | None:
    from reconciler.apply.emergency import read_marker
    data = read_marker(backend, env)
    return None if data is None else str(data.get("started"))


def run_batches(ctx, backend, journal: Journal, opts: ApplyOptions, lock: EnvLock,
                fresh: bool = False) -> ApplyResult:
    """Apply every batch not yet applied, gating between them. Used by apply and resume."""
    # resume may tighten the gate: this run's overrides go on top of the journaled rollout
    rollout = effective_rollout(journal.data.get("rollout") or rollout_of(ctx, opts),
                                opts.rollout_overrides)
    settings = gate_settings(rollout)
    on_failure = rollout.get("on_gate_failure", "rollback")
    ignore_emergency = opts.ignore_emergency or journal.data.get("kind") == ApplyKind.RECOVER
    result = ApplyResult(ApplyStatus.DONE, journal)
    dags = journal.data["dags"]
    batches = journal.data["batches"]
    total = len(dags)
    bar = _Progress(total, opts.progress)
    bar.advance(sum(len(b["dag_ids"]) for b in batches if b["status"] == BatchStatus.APPLIED))

    def tick(n: int) -> None:
        bar.advance(n)
        killpoint("dag_set", n)

    def gate_sleep(seconds: float) -> None:
        opts.sleep(seconds)
        lock.heartbeat()

    try:
        for b in batches:
            if b["status"] == BatchStatus.APPLIED:
                continue
            i = b["index"]
            ids = b["dag_ids"]
            killpoint("batch_begin")
            lock.check()
            if opts.stop():
                journal.event(f"stopped before batch {i}: {opts.stop()}")
                journal.finish(JournalStatus.HALTED)
                result.status = ApplyStatus.HALTED
                return result
            if fresh:
                fresh = False
            elif not ignore_emergency:
                now = _emergency_started(backend, ctx.env)
                if now is not None and now != journal.data.get("emergency"):
                    journal.event(f"emergency pause declared at {now}; stopped before batch {i}")
                    journal.finish(JournalStatus.HALTED)
                    result.status = ApplyStatus.HALTED
                    opts.log(f"an emergency pause was declared in {ctx.env} at {now}: stopped "
                             f"before batch {i + 1}/{len(batches)}; `pausectl rollback {ctx.env}` "
                             "undoes what this apply did, `pausectl emergency recover` ends the "
                             "emergency")
                    return result
            opts.log(f"batch {i + 1}/{len(batches)}: {len(ids)} DAG(s)")
            started = utcnow()
            journal.set_batch(i, BatchStatus.APPLYING)
            killpoint("batch_marked")
            drained = set(drain_ids(journal, ids))    # paused after their runs (drain.py)
            read_back: dict = {}     # the batch as the writes' verifying reads saw it
            errors = _set(backend, [(d, dags[d]["after"]) for d in ids if d not in drained],
                          tick, opts.log, read_back)
            if drained and not errors:
                errors = drain_batch(backend, journal, sorted(drained), opts, lock, tick)
            killpoint("batch_set")
            if errors:
                result.errors.update(errors)
                journal.data["errors"] = errors
                journal.set_batch(i, BatchStatus.FAILED)
                journal.finish(JournalStatus.FAILED)
                result.status = ApplyStatus.FAILED
                for d, e in sorted(errors.items()):
                    opts.log(f"error: {e}")
                opts.log(f"apply stopped at batch {i + 1}; `pausectl apply {ctx.env} --resume` "
                         f"retries, `pausectl rollback {ctx.env}` undoes")
                return result
            result.changed += len(ids)
            unpaused = [d for d in ids if dags[d]["after"] is False]
            if opts.gates and unpaused:
                killpoint("gate_begin")
                gate = evaluate(backend, unpaused, started, settings, sleep=gate_sleep,
                                log=opts.log, read_back=read_back)
                gate["batch"] = i
                result.gates.append(gate)
                journal.set_batch(i, BatchStatus.APPLIED if gate["passed"]
                                  else BatchStatus.GATE_FAILED, gate)
                opts.log(f"gate after batch {i + 1}: {'passed' if gate['passed'] else 'FAILED'}"
                         f" ({gate['message']})")
                if not gate["passed"]:
                    if on_failure == "rollback":
                        rollback(backend, journal, opts, ctx.env)
                        result.status = ApplyStatus.ROLLED_BACK
                    else:
                        journal.finish(JournalStatus.HALTED)
                        result.status = ApplyStatus.HALTED
                        opts.log(f"halted; `pausectl apply {ctx.env} --resume` continues after "
                                 f"a fix, `pausectl rollback {ctx.env}` undoes")
                    return result
            else:
                journal.set_batch(i, BatchStatus.APPLIED)
            killpoint("batch_applied")
        journal.finish(JournalStatus.DONE)
        killpoint("apply_done")
        return result
    finally:
        bar.close()


def _set(backend, targets: list[tuple[str, bool]], advance, log=None,
         read_back: dict | None = None) -> dict[str, str]:
    """Pauses first (the safe direction), then unpauses. Errors by dag_id; the backend's
    warnings (a DAG that appeared during a bulk request, ...) go to `log`; the verifying
    reads' rows (SetPausedResult.read_back) into `read_back`, for the gate."""
    errors: dict[str, str] = {}
    for paused in (True, False):
        ids = [d for d, p in targets if p is paused]
        if ids:
            res = backend.set_paused(ids, paused, progress=advance)
            errors.update(res.errors)
            if read_back is not None:
                read_back.update(res.read_back)
            for w in res.warnings if log is not None else ():
                log(f"warning: {w}")
    return errors


def rollback(backend, journal: Journal, opts: ApplyOptions, env: str | None = None) -> None:
    """Put every DAG of every started batch back to its state before the apply.

    During an emergency pause, DAGs the emergency holds are not started now: their prior
    state in the emergency marker becomes the rollback's target instead (emergency.py)."""
    env = env or journal.data["environment"]
    started = journal.started_dags()
    journal.data["status"] = JournalStatus.ROLLING_BACK
    journal.event("rolling back")
    journal.save()
    opts.log(f"rolling back {len(started)} DAG(s) to their prior state")
    targets = [(d, v["before"]) for d, v in started.items()]
    if not (opts.ignore_emergency or journal.data.get("kind") == ApplyKind.RECOVER):
        from reconciler.apply.emergency import defer_rollback
        targets = defer_rollback(backend, env, targets, opts.log)
    errors = _set(backend, targets, lambda n: killpoint("rollback_dag", n), opts.log)
    if errors:
        journal.data["rollback_errors"] = errors
        journal.finish(JournalStatus.ROLLBACK_FAILED)
        raise PausectlError(f"rollback incomplete: {len(errors)} DAG(s) failed "
                            f"(first: {next(iter(errors.values()))}); run `pausectl rollback "
                            f"{env}` again")
    journal.finish(JournalStatus.ROLLED_BACK)


def resume(ctx, backend, journal: Journal, opts: ApplyOptions) -> ApplyResult:
    _resumable(journal)
    with EnvLock(backend, ctx.env, log=opts.log) as lock:
        if journal.path.exists():          # re-read under the lock: it is the truth now
            journal = Journal.load(journal.path, backend)
            _resumable(journal)
        if journal.data.get("kind") != ApplyKind.RECOVER and not opts.ignore_emergency:
            now = _emergency_started(backend, ctx.env)
            if now is not None and now != journal.data.get("emergency"):
                raise PausectlError(f"an emergency pause is active in {ctx.env} since {now}; "
                                    f"not resuming. `pausectl rollback {ctx.env}` undoes this "
                                    "apply, `pausectl emergency recover` ends the emergency")
        journal.data["status"] = JournalStatus.RUNNING
        journal.event("resumed")
        for b in journal.data["batches"]:
            if b["status"] in (BatchStatus.APPLYING, BatchStatus.FAILED, BatchStatus.GATE_FAILED):
                b["status"] = BatchStatus.PENDING  # replay it: setting is_paused again is harmless
        journal.save()
        opts.log(f"resuming {journal.path}")
        return run_batches(ctx, backend, journal, opts, lock)


def _resumable(journal: Journal) -> None:
    if journal.status in (JournalStatus.DONE, JournalStatus.ROLLED_BACK):
        raise PausectlError(f"journal {journal.path} is {journal.status}; nothing to resume")
    if journal.status in (JournalStatus.ROLLING_BACK, JournalStatus.ROLLBACK_FAILED):
        raise PausectlError(f"journal {journal.path} is {journal.status.replace('_', ' ')}; "
                            f"finish it with `pausectl rollback {journal.data['environment']}`")


def rollback_journal(ctx, backend, journal: Journal, opts: ApplyOptions) -> None:
    if journal.status == JournalStatus.ROLLED_BACK:
        raise PausectlError(f"journal {journal.path} is already rolled back")
    with EnvLock(backend, ctx.env, log=opts.log):
        if journal.path.exists():
            journal = Journal.load(journal.path, backend)
            if journal.status == JournalStatus.ROLLED_BACK:
                raise PausectlError(f"journal {journal.path} is already rolled back")
        # a finished apply is undone whole; a dead one, up to the batch it reached
        if journal.status == JournalStatus.DONE:
            for b in journal.data["batches"]:
                b["status"] = BatchStatus.APPLIED
        rollback(backend, journal, opts, ctx.env)


class _Progress:
    """The apply's progress line, on whatever reporter the CLI installed (core/progress.py:
    a rich bar on a terminal, nothing otherwise)."""

    def __init__(self, total: int, enabled: bool):
        self._cm = progress.task("applying", total=total) if enabled and total else None
        self._task = self._cm.__enter__() if self._cm is not None else None

    def advance(self, n: int) -> None:
        if self._task is not None and n:
            self._task.advance(n)

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)


__all__ = ["ApplyOptions", "ApplyResult", "apply_plan", "resume", "rollback_journal", "GateFailed"]
