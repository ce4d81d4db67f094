"""The controller's HTTP endpoints, on a configurable address (default 127.0.0.1:9108):

    GET /metrics   Prometheus text: every environment's last tick (operate/metrics.py series,
                   through the publish stage's observe_outcome) and the controller's own series
    GET /healthz   200 while the loop is alive (it ticked or polled within its deadline), else 503
    GET /readyz    200 once every environment's last tick or standby poll succeeded, else 503
                   (body: JSON with each environment's role, last tick and error)

Read-only, no parameters; anything else is 404. Bodies hold only pausectl's own values (no
secret is ever in them: the status holds errors as one scrubbed line)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reconciler.core.errors import PausectlError


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise PausectlError(f"--listen: {text[:80]!r} is not HOST:PORT (e.g. 127.0.0.1:9108)")
    return host.strip("[]") or "0.0.0.0", int(port)


def _handler(status):
    class Handler(BaseHTTPRequestHandler):
        server_version = "pausectl"
        sys_version = ""

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, status.metrics_text(),
                           "text/plain; version=0.0.4; charset=utf-8")
            elif path in ("/healthz", "/readyz"):
                ok = status.healthy() if path == "/healthz" else status.ready()
                self._send(200 if ok else 503, json.dumps(status.snapshot(), indent=1) + "\n",
                           "application/json")
            else:
                self._send(404, "not found\n", "text/plain")

        def _send(self, code: int, body: str, kind: str) -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # scrapes every 15 s: not worth a log line
            return None
    return Handler


class Endpoints:
    """The server in a daemon thread; `stop()` closes the socket."""

    def __init__(self, address: str, status):
        host, port = parse_address(address)
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(status))
        except OSError as e:
            raise PausectlError(f"--listen {address}: {e.strerror or e}") from None
        self.server.daemon_threads = True
        self.address = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="pausectl-http",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
