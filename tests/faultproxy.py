"""A small HTTP proxy for tests that fails a share of the requests it forwards to a real server.

    with FaultProxy("http://127.0.0.1:8080", rate=0.2, seed=1) as proxy:
        ...  # point the client at proxy.url

Faults, chosen at random for `rate` of the requests (127.0.0.1 only, keep-alive HTTP/1.1):
- `5xx`: a 500/502/503 answer, the request never reaches the server;
- `5xx_after`: the request IS forwarded (the server acts on it), the client gets a 504;
- `reset`: the connection is reset (RST) before the request is forwarded;
- `reset_after`: forwarded, then the connection is reset instead of answering;
- `timeout`: held without an answer for `hold` seconds (the client times out), then closed;
- `timeout_after`: forwarded, then held like `timeout`.
`weights` makes some faults likelier; `stats` counts requests and each fault; `enabled`
turns faults off and on; `eligible(method, path)` (path with its query) limits faults to the
requests it accepts (e.g. only writes); `forced(method, path)` may name the fault for one
request (or "" for none), before any random choice, for a scripted sequence.
Hooks, for tests that act between requests: `before_forward(method, path, body)` runs just
before a request is forwarded (e.g. to make a concurrent change the client cannot see),
`after_forward(method, path, status)` just after the server answered it (e.g. to check the
server's state after every write), both in the proxy's handler thread.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

FAULTS = ("5xx", "5xx_after", "reset", "reset_after", "timeout", "timeout_after")
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection",
       "te", "trailer", "upgrade"}


class FaultProxy:
    def __init__(self, upstream: str, rate: float = 0.2, seed: int = 0, hold: float = 1.0,
                 faults: tuple[str, ...] = FAULTS, weights: tuple[float, ...] | None = None,
                 eligible: Callable[[str, str], bool] | None = None):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rate, self.hold, self.faults = rate, hold, faults
        self.weights = weights or (1.0,) * len(faults)
        self.enabled = True
        self.eligible = eligible
        self.forced: Callable[[str, str], str | None] | None = None
        self.before_forward: Callable[[str, str, bytes | None], None] | None = None
        self.after_forward: Callable[[str, str, int], None] | None = None
        self.hook_errors: list[str] = []     # a hook that raised: the test should fail
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.stats = {"requests": 0, **{f: 0 for f in faults}}
        self.paths: dict[str, int] = {}      # "METHOD /path" -> requests (query string dropped)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):      # quiet
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="faultproxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def faulted(self) -> int:
        return sum(self.stats[f] for f in self.faults)

    # ------------------------------------------------------------------ one request

    def _pick(self, what: str = "", method: str = "", path: str = "") -> str | None:
        with self._lock:
            self.stats["requests"] += 1
            self.paths[what] = self.paths.get(what, 0) + 1
            if not self.enabled:
                return None
            fault = self.forced(method, path) if self.forced else None
            if fault is not None:
                if fault:
                    self.stats[fault] = self.stats.get(fault, 0) + 1
                return fault or None
            if self.eligible and not self.eligible(method, path):
                return None
            if self._rng.random() >= self.rate:
                return None
            fault = self._rng.choices(self.faults, self.weights)[0]
            self.stats[fault] += 1
            return fault

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        fault = self._pick(f"{h.command} {h.path.split('?')[0]}", h.command, h.path)
        if fault in ("reset", "timeout", "5xx"):
            self._fail(h, fault)
            return
        self._hook(self.before_forward, h.command, h.path, body)
        try:
            status, headers, data = self._forward(h, body)
        except OSError:
            self._fail(h, "5xx")
            return
        self._hook(self.after_forward, h.command, h.path, status)
        if fault is not None:           # the server did it; the client never learns
            self._fail(h, fault.replace("_after", "") if fault != "5xx_after" else "504")
            return
        h.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP:
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def _hook(self, fn, *args) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception as e:  # recorded, never a crash of the handler thread
            with self._lock:
                self.hook_errors.append(f"{type(e).__name__}: {e}")

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes | None):
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP}
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _fail(self, h: BaseHTTPRequestHandler, how: str) -> None:
        h.close_connection = True
        if how in ("5xx", "504"):
            code = 504 if how == "504" else self._rng.choice((500, 502, 503))
            data = b'{"detail": "faultproxy: injected failure"}'
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(data)
            return
        if how == "timeout":
            time.sleep(self.hold)
        try:           # SO_LINGER 0: close() sends a RST, the client sees a reset
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass
