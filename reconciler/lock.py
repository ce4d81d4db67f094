"""One apply per environment: a lock held in an Airflow Variable `pausectl.lock.<env>`.

Creation is atomic on the server (POST fails if the key exists), so two runners cannot both
win. The lock names its holder (user, host, pid, started) and has a TTL: a lock past its TTL
is stale (its runner died) and is taken over; `--force-unlock` removes any lock.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import timedelta

from .errors import PausectlError
from .timeutil import iso, parse_timestamp, utcnow

DEFAULT_TTL = timedelta(hours=1)


def lock_key(env: str) -> str:
    return f"pausectl.lock.{env}"


def _holder() -> dict:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return {"holder": user, "host": socket.gethostname(), "pid": os.getpid(),
            "started": iso(utcnow())}


def describe(info: dict) -> str:
    return (f"{info.get('holder', '?')}@{info.get('host', '?')} pid {info.get('pid', '?')} "
            f"since {info.get('started', '?')}")


class EnvLock:
    def __init__(self, backend, env: str, ttl: timedelta = DEFAULT_TTL):
        self.backend, self.env, self.ttl = backend, env, ttl
        self.key = lock_key(env)
        self.info = {**_holder(), "ttl_seconds": int(ttl.total_seconds())}
        self.held = False

    def acquire(self) -> None:
        value = json.dumps(self.info)
        if self.backend.create_variable(self.key, value):
            self.held = True
            return
        current = self._current()
        if current is not None and self._stale(current):
            # a dead runner's lock: remove it and race for it once more
            self.backend.delete_variable(self.key)
            if self.backend.create_variable(self.key, value):
                self.held = True
                return
            current = self._current()
        who = describe(current) if current else "another apply"
        raise PausectlError(f"{self.env} is locked by {who}; wait for it, or if that run is dead "
                            f"use `pausectl apply {self.env} --force-unlock`")

    def _current(self) -> dict | None:
        raw = self.backend.get_variable(self.key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"holder": "unreadable lock"}

    def _stale(self, info: dict) -> bool:
        try:
            started = parse_timestamp(info["started"])
            ttl = timedelta(seconds=int(info.get("ttl_seconds", DEFAULT_TTL.total_seconds())))
        except (KeyError, ValueError, TypeError):
            return False
        return utcnow() > started + ttl

    def release(self) -> None:
        if self.held:
            current = self._current()
            if current and current.get("pid") == self.info["pid"] and \
                    current.get("host") == self.info["host"]:
                self.backend.delete_variable(self.key)
            self.held = False

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
    except ValueError:
        return "unreadable lock"
