"""One apply per environment: a lock held in an Airflow Variable `pausectl.lock.<env>`.

The lock names its holder (user, host, pid, started) and carries a random claim id, so only the
runner that wrote it can renew or release it. Creation goes through the backend's
create_variable (create-if-absent, then a read-back of our unique value), so two runners
cannot both win. A lock is stale, and is taken over, when
- it was not renewed within its TTL (a long apply renews it before every batch and while a
  health gate waits), or
- its holder ran on this host and that process is gone (a killed apply), or is this very
  process but no live EnvLock here holds it (an apply of ours that died half-way).
`--force-unlock` removes any lock.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import iso, parse_timestamp, utcnow

DEFAULT_TTL = timedelta(hours=1)
_HELD: set[str] = set()             # tokens of the locks this process holds right now
_HELD_LOCK = threading.Lock()


def lock_key(env: str) -> str:
    return f"pausectl.lock.{env}"


def _holder() -> dict:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    now = iso(utcnow())
    return {"holder": user, "host": socket.gethostname(), "pid": os.getpid(),
            "started": now, "renewed": now,
            # not "token": Airflow masks JSON keys that look like secrets when reading back
            "claim": uuid.uuid4().hex}


def describe(info: dict) -> str:
    return (f"{info.get('holder', '?')}@{info.get('host', '?')} pid {info.get('pid', '?')} "
            f"since {info.get('started', '?')}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:        # a zombie (killed, not yet reaped) is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def stale_reason(info: dict) -> str | None:
    """Why a lock is stale (its runner is gone or stopped renewing it), or None."""
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        pid = info["pid"]
        if pid == os.getpid():
            with _HELD_LOCK:
                if info.get("claim") not in _HELD:
                    return "left by an earlier apply of this process"
        elif not _pid_alive(pid):
            return f"its process {pid} on this host is gone"
    try:
        last = parse_timestamp(info.get("renewed") or info["started"])
        ttl = timedelta(seconds=int(info.get("ttl_seconds", DEFAULT_TTL.total_seconds())))
    except (KeyError, ValueError, TypeError):
        return None
    if utcnow() > last + ttl:
        return f"not renewed since {iso(last)} (TTL {int(ttl.total_seconds())}s)"
    return None


class EnvLock:
    def __init__(self, backend, env: str, ttl: timedelta = DEFAULT_TTL,
                 log=lambda s: None):
        self.backend, self.env, self.ttl, self.log = backend, env, ttl, log
        self.key = lock_key(env)
        self.info = {**_holder(), "ttl_seconds": int(ttl.total_seconds())}
        self.held = False
        self._renewed = 0.0

    def acquire(self) -> None:
        if self._create():
            return
        current = self._current()
        why = stale_reason(current) if current is not None else None
        if current is None or why:
            # gone meanwhile, or a dead runner's lock: remove it and race for it once more
            if why:
                self.log(f"taking over the lock of {self.env} held by {describe(current)}: {why}")
                self.backend.delete_variable(self.key)
            if self._create():
                return
            current = self._current()
        who = describe(current) if current else "another apply"
        raise PausectlError(f"{self.env} is locked by {who}; wait for it, or if that run is dead "
                            f"use `pausectl apply {self.env} --force-unlock`")

    def _create(self) -> bool:
        with _HELD_LOCK:          # ours from the moment it may exist on the server
            _HELD.add(self.info["claim"])
        try:
            ok = self.backend.create_variable(self.key, json.dumps(self.info))
        except PausectlError:
            self._drop_token()
            raise
        if ok:
            self.held = True
            self._renewed = time.monotonic()
        else:
            self._drop_token()
        return ok

    def _drop_token(self) -> None:
        with _HELD_LOCK:
            _HELD.discard(self.info["claim"])

    def _current(self) -> dict | None:
        raw = self.backend.get_variable(self.key)
        if raw is None:
            return None
        from reconciler.core.safejson import loads
        try:
            data = loads(raw, None, what="lock")      # bounded: depth, NaN, huge numbers
            return data if isinstance(data, dict) else {"holder": "unreadable lock"}
        except (ValueError, PausectlError):
            return {"holder": "unreadable lock"}

    def check(self, renew: bool = False) -> None:
        """Make sure we still hold the lock (raise if another runner took it); renew it when a
        quarter of the TTL has passed (or `renew`). Called before every batch."""
        if not self.held:
            raise PausectlError(f"the lock of {self.env} is not held")
        due = time.monotonic() - self._renewed > self.ttl.total_seconds() / 4
        if not (renew or due):
            return
        current = self._current()
        if current is None or current.get("claim") != self.info["claim"]:
            self.held = False
            self._drop_token()
            who = describe(current) if current else "nobody (it was removed)"
            raise PausectlError(f"lost the lock of {self.env}: it is now held by {who}; "
                                "stopped (the journal is kept)")
        self.info["renewed"] = iso(utcnow())
        self.backend.set_variable(self.key, json.dumps(self.info))
        self._renewed = time.monotonic()

    def heartbeat(self) -> None:
        """Renew if due; never raises (for long waits inside a health gate)."""
        try:
            self.check()
        except PausectlError as e:
            self.log(f"warning: {e}")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            current = self._current()
            if current and current.get("claim") == self.info["claim"]:
                self.backend.delete_variable(self.key)
        except PausectlError as e:
            self.log(f"warning: could not release the lock of {self.env} ({e}); it expires "
                     f"or is taken over when this process has exited")
        finally:
            self._drop_token()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def force_unlock(backend, env: str) -> str | None:
    """Remove the lock; returns who held it."""
    raw = backend.get_variable(lock_key(env))
    if raw is None:
        return None
    backend.delete_variable(lock_key(env))
    try:
        return describe(json.loads(raw))
    except (ValueError, AttributeError):
        return "unreadable lock"
