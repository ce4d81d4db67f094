"""The controller's leader lease: one Airflow Variable `pausectl.controller.<env>` per
environment, with the environment lock's rules (apply/lock.py: create-if-absent with a
read-back, a claim id only its writer can renew, stale after its TTL or when its process on
this host is gone). The leader renews it every tick; a replica that cannot take it is a hot
standby and tries again every poll, so it takes over within one poll of the leader's release
(SIGTERM) or death (same host), or one TTL (another host).

Separate from `pausectl.lock.<env>`: the leader still takes that lock for each apply, so a
`pausectl apply` by hand and the controller never act at once either.
"""

from __future__ import annotations

from datetime import timedelta

from reconciler.apply.lock import EnvLock, describe
from reconciler.core.errors import PausectlError


def lease_key(env: str) -> str:
    return f"pausectl.controller.{env}"


class Lease(EnvLock):
    def __init__(self, backend, env: str, ttl: timedelta, log=lambda s: None):
        super().__init__(backend, env, ttl=ttl, log=log)
        self.key = lease_key(env)
        self.info["role"] = "controller"

    def try_acquire(self, backend) -> bool:
        """Take the lease if it is free or stale; False (a standby) when a live leader has it."""
        self.backend = backend
        try:
            self.acquire()
        except PausectlError as e:
            if "is locked by" not in e.message:
                raise                 # Airflow unreachable, ...: the caller reports it
            return False
        return True

    def renew(self, backend) -> None:
        """Renew now; raises when another replica took the lease (we are a standby again)."""
        self.backend = backend
        self.check(renew=True)

    def leader(self, backend) -> str:
        """Who holds the lease, for a standby's status."""
        self.backend = backend
        current = self._current()
        return describe(current) if current else "nobody"
