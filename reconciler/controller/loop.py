"""The controller loop: `pausectl reconcile ENV... --watch`.

Each tick, per environment: reload the state repo (source.py), take or renew the leader lease
(lease.py; a replica that cannot is a hot standby and polls), resume an apply a crash left
running (its journal, operations.resume_env), then plan and apply (operations.apply_env: under
the environment lock, in the plan's batches, journaled; ended holds expire with it) or, with
`--mode report`, only plan; end in the publish stage (notify, then the tick's log line). It
then sleeps until the earlier of `--interval` and the next transition `schedule` computes (a
window opens on time, not at the next cron run); SIGHUP ticks at once (a state just pushed).
SIGTERM/SIGINT: the batch in progress finishes (its health gate too), the apply stops before
the next one (journal halted and complete), the lease is released so a standby takes over,
exit 0.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from reconciler.controller.lease import Lease
from reconciler.controller.source import StateSource
from reconciler.core.errors import PausectlError
from reconciler.core.sanitize import one_line
from reconciler.core.timeutil import iso, parse_timestamp, utcnow
from reconciler.operate.publish import Outcome, observe_outcome, publish

SLICE = 0.25           # seconds: how often a sleep looks at the stop flag
# a tick for a transition starts this much early: it reloads the state, renews the lease, takes
# the environment lock and plans for the transition's instant, then waits for it and applies
# (operations.apply_env `at` and `ready`): a window opens within one batch's writes of its start.
# The lead grows to twice what the last tick took to get that far (a loaded Airflow 2 can take
# longer than LEAD to lock and list), up to MAX_LEAD
LEAD = 6.0
MAX_LEAD = 60.0


@dataclass
class Settings:
    envs: list[str]
    options: Callable[[], object]        # a fresh ApplyOptions per apply
    mode: str = "apply"                  # apply | report
    interval: float = 60.0
    standby_poll: float = 5.0
    lease_ttl: float | None = None       # default: 2 x interval + 30 s
    listen: str | None = None
    metrics_file: str | None = None
    once: bool = False                   # one round, then exit (cron-style use, tests)


@dataclass
class EnvStatus:
    role: str = "starting"               # starting | leader | standby | stopped
    ok: bool = False
    ticks: int = 0
    errors: int = 0
    applied: int = 0                     # DAGs changed by this controller's applies
    last_tick: str | None = None
    last_result: str | None = None
    error: str | None = None
    next_wake: str | None = None
    leader: str | None = None
    revision: str | None = None


class Status:
    """What the HTTP thread reads; the loop writes it under `lock`."""

    def __init__(self, envs: list[str], deadline: float):
        self.lock = threading.Lock()
        self.envs = {e: EnvStatus() for e in envs}
        self.outcomes: dict[str, Outcome] = {}
        self.beat = time.monotonic()
        self.busy = False
        self.deadline = deadline

    def healthy(self) -> bool:
        with self.lock:
            return self.busy or time.monotonic() - self.beat < self.deadline

    def ready(self) -> bool:
        with self.lock:
            return all(s.ok for s in self.envs.values())

    def snapshot(self) -> dict:
        with self.lock:
            return {"ready": all(s.ok for s in self.envs.values()),
                    "environments": {e: asdict(s) for e, s in self.envs.items()}}

    def metrics(self):
        """One registry: each environment's last outcome plus the controller's series."""
        from prometheus_client import Counter, Gauge

        from reconciler.operate.metrics import Metrics
        m = Metrics("reconcile")
        r = m.registry
        leader = Gauge("pausectl_controller_leader", "1 when this replica leads the "
                       "environment, 0 as a standby", ["env"], registry=r)
        ready = Gauge("pausectl_controller_ready", "1 when the last tick succeeded", ["env"],
                      registry=r)
        ticks = Counter("pausectl_controller_ticks", "Controller ticks by result",
                        ["env", "result"], registry=r)
        changed = Counter("pausectl_controller_changed_dags", "DAGs changed by this "
                          "controller's applies", ["env"], registry=r)
        with self.lock:
            for o in self.outcomes.values():
                observe_outcome(m, o)
            for env, s in self.envs.items():
                leader.labels(env).set(1 if s.role == "leader" else 0)
                ready.labels(env).set(1 if s.ok else 0)
                ticks.labels(env, "ok").inc(s.ticks - s.errors)
                ticks.labels(env, "error").inc(s.errors)
                changed.labels(env).inc(s.applied)
        return m

    def metrics_text(self) -> str:
        return self.metrics().text()


@dataclass
class _Env:
    name: str
    lease: Lease
    backend: object | None = None
    backend_key: str | None = None
    leading: bool = False
    resumed: bool = False
    target: datetime | None = None      # the transition this tick was woken early for
    prep: float = 0.0                   # seconds the last tick took from its start to `ready`
    started: float = 0.0                # time.monotonic() at this tick's start


@dataclass
class Controller:
    settings: Settings
    source: StateSource
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))
    stop_reason: str | None = None

    def __post_init__(self):
        s = self.settings
        ttl = timedelta(seconds=s.lease_ttl or 2 * s.interval + 30)
        self._stop = threading.Event()
        self._wake = threading.Event()      # SIGHUP: tick now (reload the state at once)
        self.status = Status(s.envs, deadline=2 * max(s.interval, s.standby_poll) + 60)
        self.envs = [_Env(e, Lease(None, e, ttl, log=self.log)) for e in s.envs]

    # ---- lifecycle ----------------------------------------------------------------------
    def stop(self, why: str) -> None:
        self.stop_reason = why
        self._stop.set()

    def _on_signal(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            self.log("SIGHUP: reloading the state now")
            self._wake.set()
            return
        self.log(f"{name}: finishing the batch in progress, then exiting")
        self.stop(name)

    def run(self) -> int:
        from reconciler.apply.journal import check_journal_dir
        from reconciler.controller.http import Endpoints
        check_journal_dir()
        old = {sig: signal.signal(sig, self._on_signal)
               for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        endpoints = Endpoints(self.settings.listen, self.status) if self.settings.listen else None
        if endpoints is not None:
            self.log(f"serving /metrics /healthz /readyz on http://{endpoints.address}")
        try:
            while not self._stop.is_set():
                wait = min(self.round() + [self.settings.interval])
                if self.settings.once:
                    break
                self._sleep(wait)
        finally:
            self._shutdown()
            if endpoints is not None:
                endpoints.stop()
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return 0

    def _sleep(self, seconds: float, wakeable: bool = True) -> None:
        """Sleep; SIGTERM ends it, and SIGHUP too when `wakeable` (not while a planned
        transition waits for its instant: that plan never runs early)."""
        end = time.monotonic() + max(0.0, seconds)
        while not self._stop.is_set() and not (wakeable and self._wake.is_set()) \
                and (left := end - time.monotonic()) > 0:
            self._stop.wait(min(SLICE, left))
        if wakeable:
            self._wake.clear()

    def _shutdown(self) -> None:
        for e in self.envs:
            if e.leading and e.backend is not None:
                e.lease.backend = e.backend
                e.lease.release()      # a standby takes over at its next poll
                self.log(f"{e.name}: lease released")
            if e.backend is not None:
                e.backend.close()
            with self.status.lock:
                self.status.envs[e.name].role = "stopped"

    # ---- one round ----------------------------------------------------------------------
    def round(self) -> list[float]:
        """A tick per environment; each returns how long it may sleep."""
        waits = []
        with self.status.lock:
            self.status.busy = True
        try:
            for e in self.envs:
                if self._stop.is_set():
                    break
                waits.append(self._tick_safely(e))
        finally:
            with self.status.lock:
                self.status.busy = False
                self.status.beat = time.monotonic()
        if self.settings.metrics_file:
            try:
                self.status.metrics().write(self.settings.metrics_file)
            except PausectlError as ex:
                self.log(f"warning: {ex}")
        return waits

    def _tick_safely(self, e: _Env) -> float:
        st = self.status.envs[e.name]
        try:
            wait = self._tick(e)
            with self.status.lock:
                st.ok, st.error = True, None
            return wait
        except Exception as ex:  # noqa: BLE001 - a controller outlives a bad tick
            text = one_line(ex, 500) if isinstance(ex, PausectlError) else \
                f"{type(ex).__name__}: {one_line(ex, 400)}"
            self.log(f"{e.name}: tick failed: {text}")
            with self.status.lock:
                st.ok, st.error, st.errors = False, text, st.errors + 1
                st.ticks += 1
            return min(self.settings.interval, max(self.settings.standby_poll, 1.0))

    def _open(self, e: _Env, ctx):
        """The environment's backend, kept open across ticks while its config is unchanged."""
        from reconciler.engine import open_backend
        spec = ctx.cfg.env(e.name).backend
        key = json.dumps(spec, sort_keys=True, default=str) + str(ctx.cfg.root)
        if e.backend is None or e.backend_key != key:
            if e.backend is not None:
                e.backend.close()
            e.backend, e.backend_key = open_backend(ctx.cfg, e.name), key
        return e.backend

    def _tick(self, e: _Env) -> float:
        from reconciler.engine import load
        st = self.status.envs[e.name]
        now = utcnow()
        e.started = time.monotonic()
        with self.source.checkout() as root:
            ctx = load(root, e.name, now)
            backend = self._open(e, ctx)
            if not self._lead(e, backend):
                leader = e.lease.leader(backend)
                if st.role != "standby":
                    self.log(f"{e.name}: standing by, the lease is held by {leader}")
                with self.status.lock:
                    st.role, st.ok, st.leader, st.last_tick = "standby", True, leader, iso(now)
                return self.settings.standby_poll
            if not e.resumed and self.settings.mode == "apply":
                e.resumed = True
                self._resume(ctx, backend)
            outcome, live, line = self._reconcile(e, ctx, backend)
            warnings = publish(ctx.cfg, "reconcile", [outcome],
                               render=lambda: self.log(f"{iso(now)} {e.name}: {line}"))
            for w in warnings:
                self.log(f"warning: {w}")
            wait, e.target = self._next_wake(ctx, live, outcome.plan, self._lead_time(e))
            wake = iso(e.target) if e.target else None
        result = outcome.result
        with self.status.lock:
            self.status.outcomes[e.name] = outcome
            st.role, st.leader, st.ticks = "leader", "this replica", st.ticks + 1
            st.last_tick, st.last_result, st.next_wake = iso(now), line, wake
            st.revision = self.source.revision
            st.applied += result.changed if result is not None else 0
        return wait

    def _lead(self, e: _Env, backend) -> bool:
        if e.leading:
            try:
                e.lease.renew(backend)
                return True
            except PausectlError as ex:
                self.log(f"{e.name}: {ex}; standing by")
                e.leading = e.resumed = False
        if e.lease.try_acquire(backend):
            e.leading = True
            self.log(f"{e.name}: leading (lease {e.lease.key})")
        return e.leading

    def _resume(self, ctx, backend) -> None:
        """An apply a crash left `running` (its journal) is finished first, exactly."""
        from reconciler import operations as ops
        from reconciler.apply.journal import Journal
        from reconciler.plan.records import JournalStatus
        try:
            journal = Journal.latest(ctx.env, backend)
        except PausectlError:
            return                       # no journal yet
        if journal.status != JournalStatus.RUNNING:
            return
        self.log(f"{ctx.env}: resuming the interrupted apply {journal.path}")
        try:
            applied = ops.resume_env(ctx, backend, journal, self._options())
            self.log(f"{ctx.env}: resume {applied.result.status}")
        except PausectlError as ex:      # still locked by a live apply: it finishes its own
            self.log(f"{ctx.env}: not resumed: {ex}")

    def _until(self, e: _Env, target: datetime | None) -> None:
        """Wait (under the lock, planned) for the transition the tick was woken early for."""
        e.prep = time.monotonic() - e.started
        if target is not None:       # on SIGTERM the apply then stops before its first batch
            left = (target - utcnow()).total_seconds()
            if left < 0:
                self.log(f"planned for the transition at {iso(target)} {-left:.1f}s late "
                         f"(locking and listing took {e.prep:.1f}s); the next tick starts earlier")
                return
            self.log(f"planned for the transition at {iso(target)}; waiting for it")
            self._sleep(left, wakeable=False)

    @staticmethod
    def _lead_time(e: _Env) -> float:
        return min(MAX_LEAD, max(LEAD, 2 * e.prep))

    def _options(self):
        opts = self.settings.options()
        opts.stop = lambda: self.stop_reason
        opts.log = self.log
        return opts

    def _reconcile(self, e: _Env, ctx, backend) -> tuple[Outcome, list, str]:
        from reconciler import operations as ops
        from reconciler.engine import plan_env
        target, e.target = e.target, None
        if self.settings.mode == "report":
            plan, resolution, live = plan_env(ctx, backend, at=target)
            self._until(e, target)
            n = len(plan.changes)
            return (Outcome(ctx.env, plan, live, resolution), live,
                    f"{n} change(s) pending (report mode)" if n else "in sync")
        # apply_env also ends holds whose time is up, after a successful apply
        applied = ops.apply_env(ctx, backend, self._options(), at=target,
                                ready=lambda: self._until(e, target))
        r, s = applied.result, applied.plan.summary()
        line = (f"{r.status}: {r.changed} DAG(s) changed (pause {s['pause']}, unpause "
                f"{s['unpause']})" if applied.plan.changes else "in sync")
        return applied.outcome(ctx.env), applied.live or [], line

    def _next_wake(self, ctx, live, plan, lead: float = LEAD) -> tuple[float, datetime | None]:
        """Seconds until the tick for the next transition within --interval (`lead` early: the
        tick waits for the instant under the lock), and that transition; or the interval.
        The end of a `pausectl hold` is a transition too: git's state comes back on time (the
        holds in force are the tick's plan's `held` records, read once by its observation)."""
        from reconciler.policy.schedule import compute
        interval = self.settings.interval
        now = utcnow()
        try:
            sched = compute(ctx.cfg, ctx.state, list(live), now, timedelta(seconds=interval))
        except PausectlError as ex:
            self.log(f"{ctx.env}: next transition unknown ({ex}); ticking every {interval:g}s")
            return interval, None
        times = [t.at for t in sched.transitions if t.at > now]
        held = [r["hold"] for r in (plan.held if plan is not None else ()) if r.get("hold")]
        times += [t for t in map(parse_timestamp, (h["until"] for h in held)) if t > now]
        if not times:
            return interval, None
        nxt = min(times)
        left = (nxt - utcnow()).total_seconds()
        if left > interval:
            return interval, None
        return max(0.0, left - lead), nxt
