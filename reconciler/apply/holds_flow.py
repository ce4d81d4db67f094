"""Placing, releasing and expiring holds (policy/holds.py is the record and its format).

Every write of the holds Variable happens under the environment lock (apply/lock.py), the same
lock every apply takes: a hold cannot interleave with an apply's plan and batches, nor with
another hold, so the read-modify-write of the Variable is a compare-and-swap in effect. The
write is then read back and must hold exactly what was written (Airflow has no conditional
update; a writer that bypasses the lock is caught here instead of silently lost).

    place(ctx, backend, ["etl_daily"], paused=True, until=..., reason="INC-7", by="alice")
    release(ctx, backend, ["etl_daily"])          # or all_=True
    expire(ctx, backend, at)                      # after a successful apply / each watch tick
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import iso, utcnow
from reconciler.policy import holds as H


@dataclass
class HoldOutcome:
    """What a hold command did: the records written or removed, DAGs flipped, warnings."""

    env: str
    action: str                                   # hold | release | expire
    records: list = field(default_factory=list)   # HoldRecord
    flipped: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


def check_until(cfg, at: datetime, until: datetime) -> None:
    """`until` must be ahead of `at` and within safety.max_hold_hours."""
    if until <= at:
        raise PausectlError(f"the hold would end at {iso(until)}, which is not in the future")
    cap = timedelta(hours=cfg.max_hold_hours)
    if until - at > cap + timedelta(seconds=1):
        raise PausectlError(f"a hold of {H.ends_in(until - at)} is longer than "
                            f"safety.max_hold_hours ({cfg.max_hold_hours:g}h); change it in "
                            "git instead, or raise safety.max_hold_hours")


def _write(backend, env: str, holds: dict) -> None:
    """Store `holds` and read it back: the stored value must be exactly ours."""
    key = H.holds_key(env)
    text = H.dumps(holds)
    if not holds:
        backend.delete_variable(key)
        if backend.get_variable(key) is not None:
            raise PausectlError(f"Variable {key} was written meanwhile by something outside "
                                "pausectl's lock; run the command again")
        return
    backend.set_variable(key, text)
    if _parsed(backend.get_variable(key)) != _parsed(text):
        raise PausectlError(f"Variable {key} changed while it was written (a writer outside "
                            "pausectl's lock); run the command again")


def _parsed(text):
    # compared as JSON: the API server may re-serialise the value (AF3 redacts it in place)
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def _locked(backend, env: str, log):
    from reconciler.apply.lock import EnvLock
    return EnvLock(backend, env, log=log)


def place(ctx, backend, dag_ids, paused: bool, until: datetime, reason: str,
          by: str | None = None, at: datetime | None = None,
          log=lambda s: None) -> HoldOutcome:
    """Flip `dag_ids` to `paused` now (verified by listing) and record the hold; a DAG already
    held is renewed (its `since` kept, `renewals` counted: lint flags repeated renewals)."""
    at = (at or utcnow()).replace(microsecond=0)
    reason = _checked(H.check_text, reason, "--reason")
    by = _checked(H.check_text, by or whoami(), "the holder's name")
    ids = sorted({_checked(H.check_dag_id, d, f"DAG id {d!r}") for d in dag_ids})
    if not ids:
        raise PausectlError("name at least one DAG to hold")
    check_until(ctx.cfg, at, until)
    _guards(ctx, backend, ids, paused)
    out = HoldOutcome(ctx.env, "hold")
    with _locked(backend, ctx.env, log):
        live = {d.dag_id: d for d in backend.list_dags()}
        unknown = [d for d in ids if d not in live]
        if unknown:
            raise PausectlError(f"not in Airflow ({ctx.env}): {', '.join(unknown[:5])}"
                                f"{' ...' if len(unknown) > 5 else ''}; nothing held")
        current, warnings = H.read(backend, ctx.env)
        out.warnings += warnings
        to_flip = [d for d in ids if live[d].is_paused != paused]
        if to_flip:
            res = backend.set_paused(to_flip, paused)
            out.warnings += res.warnings
            after = {d.dag_id: d.is_paused for d in backend.list_dags()}   # read back
            failed = {d: res.errors.get(d, f"{d} is still "
                                        f"{'running' if paused else 'paused'}")
                      for d in to_flip if after.get(d) != paused}
            if failed:
                raise PausectlError(f"could not {'pause' if paused else 'unpause'} "
                                    f"{len(failed)} DAG(s) (first: {next(iter(failed.values()))})"
                                    f"; nothing recorded for them")
            out.flipped = to_flip
        for d in ids:
            old = current.get(d)
            rec = H.HoldRecord(d, paused, by, reason, at, until)
            if old is not None and old.active(at):
                rec = replace(rec, since=old.since, renewals=old.renewals + 1)
            current[d] = rec
            out.records.append(rec)
        _write(backend, ctx.env, current)
    return out


def _guards(ctx, backend, ids: list[str], paused: bool) -> None:
    """The apply's guards, for a change made outside git: safety.max_changes, safety.protect
    (only a dag entry in git changes a protected DAG), and no unpause during an emergency."""
    limit = ctx.cfg.max_changes
    if limit is not None and len(ids) > limit:
        raise PausectlError(f"holding {len(ids)} DAGs is more than safety.max_changes "
                            f"({limit}); that is a change for git")
    from reconciler.plan.model import protect_index
    protect = protect_index(ctx.cfg, ctx.state)
    guarded = [d for d in ids if protect and protect.lookup(d, (), ())]
    if guarded:
        raise PausectlError(f"protected by safety.protect: {', '.join(guarded[:5])}; only a "
                            "dag entry in git changes it")
    if not paused:
        from reconciler.apply.emergency import read_marker
        marker = read_marker(backend, ctx.env)
        if marker is not None:
            raise PausectlError(f"an emergency pause is active in {ctx.env} since "
                                f"{marker.get('started')}; a hold cannot unpause during it "
                                f"(`pausectl emergency recover {ctx.env}` ends it)")


def _checked(check, value, what: str):
    try:
        return check(value, what) if check is H.check_text else check(value)
    except ValueError as e:
        raise PausectlError(f"{what}: {e}") from None


def release(ctx, backend, dag_ids=(), all_: bool = False, log=lambda s: None) -> HoldOutcome:
    """Remove holds now. The DAGs stay as they are until the next apply puts back git."""
    out = HoldOutcome(ctx.env, "release")
    with _locked(backend, ctx.env, log):
        current, out.warnings = H.read(backend, ctx.env)
        names = sorted(current) if all_ else sorted(set(dag_ids))
        missing = [d for d in names if d not in current]
        if missing and not all_:
            raise PausectlError(f"no hold on {', '.join(missing[:5])} in {ctx.env}")
        out.records = [current.pop(d) for d in names]
        if out.records or out.warnings:
            _write(backend, ctx.env, current)
    return out


def expire(ctx, backend, at: datetime | None = None, locked: bool = True,
           log=lambda s: None) -> HoldOutcome:
    """Remove the records of holds that have ended (their DAGs are back to git's state once
    the plan of `at` was applied: call this after a successful apply, or each watch tick
    after its apply). `locked`: the caller holds the environment lock already."""
    at = at or utcnow()
    out = HoldOutcome(ctx.env, "expire")
    current, out.warnings = H.read(backend, ctx.env)
    active, expired = H.split(current, at)
    if not expired:
        return out
    if not locked:
        with _locked(backend, ctx.env, log):
            return expire(ctx, backend, at, locked=True, log=log)
    out.records = sorted(expired.values(), key=lambda h: h.dag_id)
    _write(backend, ctx.env, active)
    return out


def notify(cfg, outcome: HoldOutcome, at: datetime | None = None) -> list[str]:
    """Announce a hold placed, released or expired (the `hold` notify event)."""
    if not outcome.records:
        return []
    from reconciler.operate.notify import notify_hold
    at = at or utcnow()
    return notify_hold(cfg, outcome.env, outcome.action,
                       [(h.dag_id, h.describe(at)) for h in outcome.records])
