"""Emergency pause and recover, and the marker that makes every later plan/apply/drift respect
the emergency (the `emergency` precedence layer) instead of undoing it.

The marker is the Airflow Variable `pausectl.emergency.<env>`, JSON:
`{version, environment, reason, owner, started, by, except: [match spec...], except_text,
protect, prior: {dag_id: is_paused}, kept: [dag_id...], revision}` (revision: bumped on every
write, so `recover` deletes only the marker it recovered).
`prior` holds, for every DAG the emergency paused, its state just before (running), i.e. what
`recover` puts back; DAGs not in `prior` were never touched. `kept` lists the running DAGs left
running because they matched `--except` or `safety.protect`.

`pause`: list every DAG, write the marker (before anything changes), then pause every running
DAG that no exception matches, in as few requests as possible (see `fast_pause`). Running it
again while an emergency is active completes it (new running DAGs are paused and added to
`prior`, the first prior state of a DAG is never overwritten). Its requests, in order: the
listing; the marker's create (no read first: a marker found instead is read then); the bulk
PATCH(es) and their read-back; the marker's re-read together with the apply lock's holder
(`at_once`: independent reads go out together on the REST backend). The listing must come
first (the prior state is read before any write) and the marker before the PATCH (a crash
in between is recovered from it).
`recover` (operations.recover_env): a plan that puts every DAG of `prior` back (recover_plan),
applied like any plan (lock, journal, canary batches, health gates); the marker is deleted
(`end`) only after that apply succeeded.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from reconciler.apply.lock import describe, lock_key
from reconciler.core import progress
from reconciler.live.base import BulkPauser, UnconfirmedCreate
from reconciler.core.errors import PausectlError
from reconciler.policy.resolve import Emergency
from reconciler.policy.selectors import Selector, SelectorIndex, parse_selector
from reconciler.core.timeutil import iso, utcnow

MARKER_VERSION = 1


def marker_key(env: str) -> str:
    return f"pausectl.emergency.{env}"


def read_marker(backend, env: str) -> dict | None:
    raw = backend.get_variable(marker_key(env))
    if raw is None:
        return None
    from reconciler.core.safejson import loads
    try:
        data = loads(raw, None, what="marker")     # bounded: depth, NaN, huge numbers
        if not isinstance(data, dict) or not isinstance(data.get("prior", {}), dict):
            raise ValueError("not an object with a prior map")
        for s in data.get("except") or []:
            Selector.from_spec(s)
    except (ValueError, TypeError, AttributeError, PausectlError) as e:
        raise PausectlError(f"emergency marker {marker_key(env)} in {env} is corrupt ({e}); "
                            "inspect it, then fix or delete the Variable") from None
    return data


def _except_index(data: dict) -> SelectorIndex | None:
    selectors = [Selector.from_spec(s) for s in data.get("except") or []]
    return SelectorIndex((s, s) for s in selectors) if selectors else None


def load_marker(backend, env: str) -> Emergency | None:
    data = read_marker(backend, env)
    if data is None:
        return None
    return Emergency(reason=data.get("reason", "?"), owner=data.get("owner", "?"),
                     started=data.get("started", "?"),
                     where=f"Variable {marker_key(env)}", except_index=_except_index(data))


def except_specs(excepts: list[str], protect: list[str]) -> list[dict]:
    """`--except` selectors plus the safety.protect globs, as match specs."""
    specs = []
    for text in excepts:
        try:
            specs.append(parse_selector(text))
        except ValueError as e:
            raise PausectlError(f"--except: {e}") from None
    if protect:
        specs.append({"dag_id": list(protect)})
    return specs


def covered(data: dict, dags) -> set[str]:
    """DAG ids (of `dags`, LiveDag values) the emergency holds paused: no exception matches."""
    index = _except_index(data)
    return {d.dag_id for d in dags
            if not (index and index.lookup(d.dag_id, d.tags, d.owners))}


# ---------------------------------------------------------------- pause

def pause(backend, env: str, reason: str, owner: str, excepts: list[str], protect: list[str],
          by: str, log: Callable[[str], None] = lambda s: None,
          clock: Callable[[], float] = time.perf_counter,
          confirm: Callable[[int, int], None] | None = None) -> dict:
    """Declare (or complete) an emergency in `env`. Returns a summary with timings.
    `confirm(to_pause, kept_running)` may refuse (raise) before anything is written."""
    t0 = clock()
    specs = except_specs(excepts, protect)
    live = backend.list_dags()
    t_list = clock()
    data = {"version": MARKER_VERSION, "environment": env, "reason": reason, "owner": owner,
            "started": iso(utcnow()), "by": by, "except": specs, "except_text": list(excepts),
            "protect": list(protect), "prior": {}, "kept": []}
    targets, kept = _split(data, live)
    if confirm is not None:
        confirm(len(targets), len(kept))
    _record(data, targets, kept)
    # created without a read first (the usual case: no emergency yet, one request saved);
    # a marker found instead is completed below, before anything is paused
    unconfirmed, existing = _create_marker(backend, env, data)
    if existing is not None:
        if (existing.get("reason") != reason
                or list(existing.get("except_text") or []) != list(excepts)):
            log(f"warning: an emergency is already active in {env} since "
                f"{existing.get('started')} ({existing.get('reason')!r}); completing it with "
                "its own reason and exceptions")
        shown = (len(targets), len(kept))
        targets, kept = _split(existing, live)       # its own exceptions decide
        if confirm is not None and (len(targets), len(kept)) != shown:
            confirm(len(targets), len(kept))
        _record(existing, targets, kept)             # its prior state is never overwritten
        data = existing
        backend.set_variable(marker_key(env), json.dumps(data))
    t_marker = clock()
    index = _except_index(data)

    def is_excepted(d) -> bool:
        return bool(index and index.lookup(d.dag_id, d.tags, d.owners))

    errors = fast_pause(backend, live, targets, is_excepted, log) if targets else {}
    t_done = clock()
    # after the pause, at once: the marker created without a read-back is re-read (as late
    # as before: the settle a concurrent creator needs), and who holds the apply lock
    holder, _ = at_once(backend, lambda: apply_holder(backend, env),
                        lambda: _confirm_marker(backend, env, data, log) if unconfirmed
                        else None)
    if errors:
        data["errors"] = errors
        backend.set_variable(marker_key(env), json.dumps(data))
    return {"environment": env, "started": data["started"], "reason": data["reason"],
            "paused": sum(1 for t in targets if t not in errors), "kept_running": kept,
            "errors": errors,
            "already_paused": sum(d.is_paused for d in live), "dags": len(live),
            "completed_existing": existing is not None, "apply_holder": holder,
            "seconds": {"list": round(t_list - t0, 3), "marker": round(t_marker - t_list, 3),
                        "pause": round(t_done - t_marker, 3), "total": round(t_done - t0, 3)}}


def at_once(backend, *calls: Callable[[], object]) -> list:
    """The results of independent `calls`, sent at once on a backend whose calls are
    thread-safe and remote (a BulkPauser: the REST backend, one thread-safe client; the
    others are in-process and gain nothing): the first here, the rest on threads."""
    if len(calls) < 2 or not isinstance(backend, BulkPauser):
        return [c() for c in calls]
    with ThreadPoolExecutor(max_workers=len(calls) - 1,
                            thread_name_prefix="pausectl-emergency") as pool:
        later = [pool.submit(c) for c in calls[1:]]
        first = calls[0]()            # its error wins; `with` waits for the others
        return [first] + [f.result() for f in later]


def apply_holder(backend, env: str) -> str | None:
    """Who holds the apply lock of `env` (an emergency does not wait for it, it warns)."""
    try:
        raw = backend.get_variable(lock_key(env))
        return describe(json.loads(raw)) if raw else None
    except (PausectlError, ValueError, AttributeError):
        return None


def _split(data: dict, live) -> tuple[list[str], list[str]]:
    """(running DAGs the marker `data` holds paused, running DAGs its exceptions keep)."""
    hold = covered(data, live)
    running = [d.dag_id for d in live if not d.is_paused]
    return sorted(d for d in running if d in hold), sorted(d for d in running if d not in hold)


def _record(data: dict, targets: list[str], kept: list[str]) -> None:
    """Add this run's targets (their prior state: running) and kept DAGs to the marker; the
    first prior state of a DAG is never overwritten."""
    prior = data["prior"]
    for d in targets:
        prior.setdefault(d, False)
    data["kept"] = sorted(set(data.get("kept") or []) | set(kept))
    data["revision"] = int(data.get("revision") or 0) + 1


def _create_marker(backend, env: str, data: dict) -> tuple[bool, dict | None]:
    """Create the marker only if absent (two people declaring an emergency at once must not
    overwrite each other's prior state). Returns (the value written still needs the
    read-back of `_confirm_marker`, the marker found instead, to be completed, or None)."""
    key = marker_key(env)
    # a backend whose create needs a settle-and-re-read to be sure (airflow-api: the
    # server's create is an upsert) offers create_variable_unconfirmed; the re-read is
    # then done after the pause (_confirm_marker), so it costs the emergency no time
    quick = isinstance(backend, UnconfirmedCreate)
    create_fn = backend.create_variable_unconfirmed if quick else backend.create_variable
    if create_fn(key, json.dumps(data)):
        return quick, None
    now = read_marker(backend, env)
    if now is None:                   # deleted meanwhile: write ours
        backend.set_variable(key, json.dumps(data))
        return False, None
    if _same_marker(now, data):       # a retried create whose first attempt landed
        return False, None
    return False, now


def _merge_into_current(backend, env: str, data: dict, log) -> None:
    other = read_marker(backend, env)
    if other is None:
        return
    log(f"warning: another emergency was declared in {env} at the same moment; merging")
    for d, p in data["prior"].items():
        other["prior"].setdefault(d, p)
    other["kept"] = sorted(set(other.get("kept") or []) | set(data["kept"]))
    other["revision"] = int(other.get("revision") or 0) + 1
    data.clear()
    data.update(other)


def _same_marker(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("started", "by", "revision", "reason")) \
        and set(a.get("prior") or {}) == set(b.get("prior") or {})


def _confirm_marker(backend, env: str, data: dict, log) -> None:
    """After the pause: the marker created without a read-back must still be ours (compared
    by what identifies it, not as text: Airflow 3 re-serialises a JSON Variable on read and
    masks string values under keys that look secret)."""
    now = read_marker(backend, env)
    if now is not None and _same_marker(now, data):
        return
    _merge_into_current(backend, env, data, log)
    backend.set_variable(marker_key(env), json.dumps(data))


# ---------------------------------------------------------------- the fast path

def fast_pause(backend, live, targets: list[str], is_excepted, log) -> dict[str, str]:
    """Pause exactly `targets` (running DAGs, just listed in `live`) and never a DAG that
    `is_excepted`. A backend with the BulkPauser capability (airflow-api) does it in a few
    bulk requests, the way its Airflow version does them correctly, verified by listing
    (live/bulk.py); elsewhere (dagmodel: one transaction; snapshot) `set_paused`, which
    changes exactly the ids it is given. Returns errors by dag_id."""
    with progress.task(f"emergency: pausing {len(targets)} DAG(s)"):   # a spinner, terminal only
        if isinstance(backend, BulkPauser):
            res = backend.pause_except(live, targets, is_excepted)
        else:
            res = backend.set_paused(targets, True)
    for w in res.warnings:
        log(f"warning: {w}")
    return dict(res.errors)


# ---------------------------------------------------------------- recover

def recover_plan(env: str, data: dict, live, rollout: dict | None = None):
    """A plan that puts every DAG the emergency paused back to its prior state, frozen with
    the batches of `rollout` (the recover run's, `--batches` included)."""
    from reconciler.plan.model import Change, Plan, live_hash
    from reconciler.plan.records import Action, Missing
    now = iso(utcnow())
    plan = Plan(environment=env, generated_at=now, at=now, desired_ref=None,
                live_hash=live_hash(live), emergency=data.get("started"))
    by_id = {d.dag_id: d for d in live}
    where = f"Variable {marker_key(env)}"
    reason = f"emergency recover ({data.get('reason')})"
    for dag_id, prior in sorted(data.get("prior", {}).items()):
        d = by_id.get(dag_id)
        if d is None:
            plan.missing.append(Missing(dag_id, where, prior))
            continue
        if d.is_paused == prior:
            plan.unchanged += 1
            continue
        plan.changes.append(Change(dag_id=dag_id, action=Action.to(prior),
                                   live_paused=d.is_paused, desired_paused=prior, rule=where,
                                   reason=reason, owner=data.get("owner"),
                                   rule_name="emergency recover"))
    plan.warnings.append(f"recovering the emergency declared {data.get('started')} by "
                         f"{data.get('owner')}: {data.get('reason')}")
    return plan.freeze(rollout or {}, live)


def defer_rollback(backend, env: str, targets: list[tuple[str, bool]], log
                   ) -> list[tuple[str, bool]]:
    """A rollback during an emergency must not unpause what the emergency holds paused.
    For such DAGs the rollback's target becomes their prior state in the marker (so recover
    puts them where the rollback wanted them); the rest is returned to be set now."""
    data = read_marker(backend, env)
    if data is None:
        return targets
    live = backend.list_dags()
    hold = covered(data, live)
    now, changed = [], False
    for dag_id, paused in targets:
        if dag_id in hold:
            if paused:
                now.append((dag_id, True))
                if data["prior"].pop(dag_id, None) is not None:
                    changed = True
            else:
                data["prior"][dag_id] = False
                changed = True
        else:
            now.append((dag_id, paused))
    deferred = len(targets) - len(now)
    if changed:
        data["revision"] = int(data.get("revision") or 0) + 1
        backend.set_variable(marker_key(env), json.dumps(data))
    if deferred:
        log(f"emergency active in {env}: {deferred} DAG(s) stay paused now; "
            "`pausectl emergency recover` will start them")
    return now


def end(backend, env: str, data: dict) -> None:
    """Delete the marker `data` was read from, once its recover succeeded (operations.py
    runs the recover); refused when the marker changed meanwhile (declared again)."""
    now = read_marker(backend, env)
    if now is not None and now.get("revision") != data.get("revision"):
        raise PausectlError(f"the emergency in {env} was declared again (or its marker changed) "
                            f"during this recover; the marker is kept: run `pausectl emergency "
                            f"recover {env}` again")
    backend.delete_variable(marker_key(env))
