"""Dedicated Airflow servers a test module prepares in the background.

A module that runs an Airflow of its own defines `prestart()` (conftest calls it once
collection shows the module's tests will run): the slow part without processes (venv, home,
migrated DB, DAG files registered) then runs while earlier modules' tests do. `Early` holds
those futures: `get` waits for one and launches it (fails in CI, skips elsewhere when it does
not come up); `launch_ahead` starts a server's processes before its tests need it;
`drop_unused` stops what no selected test used.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Callable

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def skip_all() -> bool:
    """PAUSECTL_SKIP_AIRFLOW=1 skips real-Airflow tests, never in CI."""
    return os.environ.get("PAUSECTL_SKIP_AIRFLOW") == "1" and not in_ci()


class Early:
    def __init__(self, name: str, prepare: Callable[[str], object]):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                           thread_name_prefix=name)
        self._prepare = prepare
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._launched: set[str] = set()

    def _safe_prepare(self, key: str):
        server = self._prepare(key)
        try:
            server.prepare()
        except BaseException:
            server.stop()
            raise
        return server

    def prestart(self, *keys: str) -> None:
        if not skip_all():
            for key in keys:
                self._futures.setdefault(key, self._pool.submit(self._safe_prepare, key))

    def launch_ahead(self, key: str) -> None:
        """Start `key`'s processes in the background once it is prepared, so that a later
        get(key) only waits for what is left of its start-up (e.g. the module's next server,
        while the tests of the one before it run). FIFO on one worker: after its prepare."""
        if skip_all() or key in self._launched:
            return
        prepared = self._futures.pop(key, None) or self._pool.submit(self._safe_prepare, key)

        def launch():
            server = prepared.result()
            try:
                server.launch()
            except BaseException:
                server.stop()
                raise
            return server
        self._launched.add(key)
        self._futures[key] = self._pool.submit(launch)

    def get(self, key: str):
        """The prepared server `key`, launched and ready."""
        if skip_all():
            pytest.skip("PAUSECTL_SKIP_AIRFLOW=1")
        server = None
        try:
            future = self._futures.pop(key, None) or self._pool.submit(self._safe_prepare, key)
            server = future.result()
            if key not in self._launched:
                server.launch()
            self._launched.discard(key)
            server.wait_ready()
        except Exception as exc:
            if server is not None:
                server.stop()
            if in_ci():
                pytest.fail(f"Airflow ({key}) did not start: {exc}", pytrace=False)
            pytest.skip(f"Airflow ({key}) did not start: {str(exc).splitlines()[0]}")
        return server

    def drop_unused(self) -> None:
        """A server prestart() prepared that no selected test used: its home goes too."""
        while self._futures:
            _, future = self._futures.popitem()
            if not future.cancel():
                try:
                    future.result().stop()
                except Exception:
                    pass
