"""A local webhook receiver for tests (http.server on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hooks:
    """A local webhook receiver: per path, a script of responses (status, delay, headers)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: dict[str, list[tuple[int, float, dict]]] = {}
        self.lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with hooks.lock:
                    hooks.requests.append({"path": self.path, "body": json.loads(body or b"{}"),
                                           "t": time.monotonic(),
                                           "ua": self.headers.get("user-agent")})
                    steps = hooks.script.get(self.path.split("?")[0]) or [(200, 0, {})]
                    status, delay, headers = steps.pop(0) if len(steps) > 1 else steps[0]
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def at(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"].split("?")[0] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def refused_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                        # nothing listens there now
    return f"http://127.0.0.1:{port}/hook?token=SECRET123"
