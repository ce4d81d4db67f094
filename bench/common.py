"""What the benchmarks share: request counting, timing, the bare baselines, state repos.

Request counts come from a counter wrapped around httpx's real transport for the whole
process (pausectl's backend and the baselines alike), so a count is what went on the wire.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CREDS = {"BENCH_USER": "admin", "BENCH_PASSWORD": "admin"}


class _Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()
        self.paths: dict[str, int] = {}

    def add(self, request: httpx.Request) -> None:
        with self.lock:
            self.n += 1
            key = f"{request.method} {request.url.path}"
            self.paths[key] = self.paths.get(key, 0) + 1


COUNTER = _Counter()
_real_handle = httpx.HTTPTransport.handle_request


def _counting_handle(self, request):
    COUNTER.add(request)
    return _real_handle(self, request)


httpx.HTTPTransport.handle_request = _counting_handle


@contextlib.contextmanager
def counted():
    """Yields a dict filled on exit with `requests` (and per path) sent inside the block."""
    out: dict = {}
    with COUNTER.lock:
        n0, p0 = COUNTER.n, dict(COUNTER.paths)
    try:
        yield out
    finally:
        with COUNTER.lock:
            out["requests"] = COUNTER.n - n0
            out["paths"] = {k: v - p0.get(k, 0) for k, v in COUNTER.paths.items()
                            if v - p0.get(k, 0)}


def measure(fn: Callable[[], object], trials: int = 3,
            before: Callable[[], object] | None = None) -> tuple[float, int]:
    """(median seconds, requests of the last trial) of `fn`, `before` run untimed each time."""
    times, reqs = [], 0
    for _ in range(trials):
        if before is not None:
            before()
        with counted() as c:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        reqs = c["requests"]
    return statistics.median(times), reqs


def client(server) -> httpx.Client:
    return httpx.Client(base_url=server.api_url, headers=server.auth_headers(), timeout=120)


def bare_listing(server, page: int = 100) -> int:
    """Every DAG, paged by offset with `page` rows per request: the floor any plan pays."""
    n, offset = 0, 0
    stale = {"exclude_stale": "false"} if server.major == 3 else {"only_active": "false"}
    with client(server) as http:
        while True:
            data = http.get("/dags", params={"limit": page, "offset": offset, **stale}).json()
            rows = data["dags"]
            n += len(rows)
            offset += len(rows)
            if not rows or offset >= data["total_entries"]:
                return n


def backend_yaml(name: str, server, page: int = 100) -> str:
    return (f"  {name}:\n    backend: {{type: airflow-api, url: \"{server.url}\", "
            "auth: password-token, username_env: BENCH_USER, password_env: BENCH_PASSWORD, "
            f"page_size: {page}}}\n")


def write_state(dest: Path, envs: dict[str, tuple[object, str]], extra: str = "",
                page: int = 100) -> Path:
    """A state repo: envs = {name: (server, env yaml body)}."""
    state = dest / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "pausectl.yaml").write_text(
        "environments:\n" + "".join(backend_yaml(n, s, page) for n, (s, _) in envs.items())
        + "safety: {max_changes: 100000}\n" + extra)
    for name, (_, body) in envs.items():
        (state / f"{name}.yaml").write_text(f"environment: {name}\n{body}")
    return state


def bench_env(tmp: Path) -> None:
    os.environ.update(CREDS, PAUSECTL_JOURNAL_DIR=str(tmp / "journal"))


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


@contextlib.contextmanager
def impact(enabled: bool):
    """`plan_env` as shipped (enabled: issue 15's impact preview, whose REST reads are per DAG
    for backfills and schedules) or without it, to show the rest of the path on its own."""
    import reconciler.engine as engine
    real = engine.observe
    if not enabled:
        engine.observe = lambda *a, **kw: real(*a, **{**kw, "impact": False})
    try:
        yield
    finally:
        engine.observe = real
