"""GET answers shared between backends during one read-only fleet run (`pausectl drift
ENV...`): environments that point at the same Airflow with the same credentials read each
listing page, the event log and the version once (single-flight), and each environment still
judges the rows against its own state.

    with shared_reads() as reads:        # each worker thread: contextvars.copy_context().run
        ... backends send as usual; Transport.send asks current() ...

Only authenticated requests are shared: logins, probes and AF2's login form fill the asking
client's own cookie jar, so they always go to the server."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterator

import httpx

#: a POST that only reads (batched runs, logins): it does not end a shared read's validity
READ_POSTS = ("/list", "/auth/token", "/login/")


class SharedReads:
    """GET answers shared by every Transport sending within one `shared_reads()` scope.

    Keyed by the full URL (parameters included), what the caller accepts and who asks
    (the credentials' kind, user and a digest of the secret: two users may see different
    DAGs). In flight: the first caller sends, the others wait for its answer. Done: kept
    (least recently used first out) up to `max_bytes` of bodies, for callers a moment late.
    Any write sent in the scope (PATCH, PUT, DELETE, a POST that is not a read) drops them
    all: what was read before it may no longer be true."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.flights: dict[tuple, threading.Event] = {}
        self.done: OrderedDict[tuple, httpx.Response] = OrderedDict()
        self.bytes = 0
        self.sent = 0                  # GETs that went to a server
        self.shared = 0                # GETs answered from another caller's response

    def get(self, key: tuple, fetch: Callable[[], tuple[httpx.Response, Any]]
            ) -> tuple[httpx.Response, Any] | tuple[httpx.Response, None]:
        """(response, data) from `fetch` for the first caller; (response, None) for a
        shared answer (the caller parses its own copy of the body)."""
        with self.lock:
            resp = self.done.get(key)
            if resp is not None:
                self.done.move_to_end(key)
                self.shared += 1
                return resp, None
            flight = self.flights.get(key)
            first = flight is None
            if first:
                flight = self.flights[key] = threading.Event()
        if not first:
            flight.wait()
            with self.lock:
                resp = self.done.get(key)
                self.shared += resp is not None
            if resp is not None:
                return resp, None
            # no answer kept (the first caller failed): each asks itself, with its own errors
            return self._fetch(key, fetch)
        try:
            return self._fetch(key, fetch)
        finally:
            with self.lock:
                self.flights.pop(key, None)
            flight.set()

    def _fetch(self, key: tuple, fetch: Callable[[], tuple[httpx.Response, Any]]
               ) -> tuple[httpx.Response, Any]:
        resp, data = fetch()
        with self.lock:
            self.sent += 1
            self._keep(key, resp)
        return resp, data

    def _keep(self, key: tuple, resp: httpx.Response) -> None:
        size = len(resp.content)
        if size > self.max_bytes:
            return
        self.done[key] = resp
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self.done.popitem(last=False)
            self.bytes -= len(old.content)

    def wrote(self) -> None:
        with self.lock:
            self.done.clear()
            self.bytes = 0


_CURRENT: contextvars.ContextVar[SharedReads | None] = contextvars.ContextVar(
    "pausectl_shared_reads", default=None)


@contextlib.contextmanager
def shared_reads(reads: SharedReads | None = None) -> Iterator[SharedReads]:
    """Share GET answers between the backends used in this context (and in contexts copied
    from it: contextvars.copy_context() for each worker thread). Read-only runs only."""
    reads = reads or SharedReads()
    token = _CURRENT.set(reads)
    try:
        yield reads
    finally:
        _CURRENT.reset(token)


def who(auth: httpx.Auth | None) -> tuple:
    """Who a request is sent as, for the shared-read key (a digest, never the secret)."""
    creds = getattr(auth, "creds", None)
    if creds is None:
        return (type(auth).__name__, id(auth))       # unknown kind: shared with no one
    secret = creds.password or creds.static_token
    digest = hashlib.sha256(secret.value.encode()).hexdigest() if secret else ""
    return (type(auth).__name__, creds.mode, creds.username, digest)


def current() -> SharedReads | None:
    """The scope active in this context, if any."""
    return _CURRENT.get()
