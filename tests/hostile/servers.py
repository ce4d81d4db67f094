"""Hostile Airflow servers on 127.0.0.1, the CLI runner and the checks tests/hostile uses.

`HostileAirflow` is a real HTTP(S) server (http.server, one thread per request) that answers
like Airflow 3's REST API until a test replaces a route with something no real Airflow does:
HTML, garbage, gigabytes, 100k-deep JSON, a redirect to another host, a one-byte-per-second
drip, a self-signed certificate, an error body that echoes the credentials it was sent.
"""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import quote, quote_plus, urlsplit

USER = "svc-pausectl"
PASSWORD = 'Pa$$ w0rd/+?&="\\é<ok>'          # every encoding of it differs from the literal
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzdmMtcGF1c2VjdGwifQ."
       "Q2x1ZWxlc3NTaWduYXR1cmVfMTIzNDU2Nzg5MA")
ENV = {"AIRFLOW_USER": USER, "AIRFLOW_PASSWORD": PASSWORD}


# ---- the CLI, in process (fast) or as a subprocess (the real entry point) --------------------

@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err


def run(args: list[str], cwd: Path, env: dict | None = None, subprocess_: bool = False) -> Result:
    """pausectl ARGS in `cwd` through reconciler.cli.main.main (the console script's function)."""
    t0 = time.monotonic()
    if subprocess_:
        e = {k: v for k, v in os.environ.items() if k not in ("PAUSECTL_DEBUG", "PAUSECTL_STATE")}
        e.update(env or {})
        e["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        p = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=e,
                           capture_output=True, text=True, errors="replace", timeout=120)
        return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    from reconciler.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    saved = (sys.stdout, sys.stderr, os.getcwd())
    os.environ.pop("PAUSECTL_DEBUG", None)
    os.environ.pop("PAUSECTL_STATE", None)
    os.environ.update(env or {})
    sys.stdout, sys.stderr = out, err
    code = 0
    try:
        os.chdir(cwd)
        main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        os.chdir(saved[2])
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(code, out.getvalue(), err.getvalue(), time.monotonic() - t0)


# ---- checks ----------------------------------------------------------------------------------

ANNOTATION = re.compile(r"^::(error|warning|notice)( [A-Za-z]+=[^,:\n]*(,[A-Za-z]+=[^,:\n]*)*)?::"
                        r"[^\n]*$")
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def assert_clean(r: Result, fmt: str = "text") -> None:
    """Never a traceback or an internal error; no raw control or escape byte; no line a GitHub
    runner would take for a workflow command, except well-formed annotations in github format."""
    assert "Traceback" not in r.text and "internal error" not in r.text, r.text[-3000:]
    assert not RAW_CONTROL.search(r.text), repr(RAW_CONTROL.search(r.text))
    assert "##[" not in r.text
    for line in r.text.split("\n"):
        if line.lstrip().startswith("::"):
            assert fmt == "github" and ANNOTATION.match(line), f"workflow command: {line!r}"
    if fmt not in ("json", "yaml"):           # data formats keep the raw text, mid-line
        raw = ("::add-mask::", "::stop-commands::")
        if fmt != "github":                     # (where annotations are the only commands)
            raw += ("\n::error", "\n::warning", "\n::notice")
        for text in raw:
            assert text not in r.text, f"{text!r} in output"


def outside_code(md: str) -> str:
    """Markdown with its code spans removed (what GitHub renders as markup)."""
    return re.sub(r"(`+)(.+?)\1", " ", md)


def assert_markdown_inert(md: str) -> None:
    prose = outside_code(md)
    for bad in ("<img", "<script", "<a ", "![", "<details><summary><"):
        assert bad not in prose, f"{bad!r} outside a code span"
    assert not re.search(r"(?<!\\)\]\(", prose), "a Markdown link outside a code span"
    assert not re.search(r"(?<![\w`&])@[A-Za-z0-9][\w-]*(/[\w-]+)?\b(?!&)", prose.replace(
        "@&#8203;", "")), "an @mention"
    assert not re.search(r"https?://|www\.", prose), "a bare link"
    assert len(md) <= 65_536


def secret_forms(user: str = USER, password: str = PASSWORD, extra: tuple = (JWT,)) -> set[str]:
    """Every encoding a secret could leak in (written independently of reconciler/core/secrets.py)."""
    out = set()
    for s in (password, *extra):
        out |= {s, json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1], repr(s)[1:-1],
                html.escape(s), quote(s, safe=""), quote(s), quote_plus(s),
                quote(s, safe="").lower(), quote_plus(s).lower()}
        raw = s.encode()
        out |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    pair = f"{user}:{password}".encode()
    out |= {base64.b64encode(pair).decode(), base64.b64encode(pair).decode().rstrip("="),
            base64.urlsafe_b64encode(pair).decode()}
    out.add(JWT.rsplit(".", 1)[1])                     # a JWT's signature alone
    return out


def assert_no_secret(text: str, where: str = "output") -> None:
    for form in secret_forms():
        assert form not in text, f"a secret form ({form[:6]}...) in {where}"


def assert_no_secret_in_files(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            assert_no_secret(p.read_bytes().decode("utf-8", "replace"), str(p))


# ---- the servers -----------------------------------------------------------------------------

Route = Callable[["Handler", bytes], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args) -> None:   # quiet
        pass

    def _any(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        path = urlsplit(self.path).path
        self.server.owner.requests.append((self.command, path, dict(self.headers), body))
        route = self.server.owner.route(self.command, path)
        try:
            route(self, body)
        except OSError:             # the client gave up (the point of many cases)
            pass

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "HostileAirflow"

    def handle_error(self, request, client_address) -> None:
        # a bug in a test's route: kept for the test to see (printing it would land in the
        # in-process CLI's captured stderr and look like pausectl's traceback). A client that
        # hung up (after a byte limit, say) can reset the socket while the handler flushes or
        # reads the next request: that is the client's choice, not a bug in the route
        err = sys.exc_info()[1]
        if not isinstance(err, (ConnectionResetError, BrokenPipeError)):
            self.owner.errors.append(repr(err))


def reply(h: Handler, code: int, body: bytes | str, ctype: str = "application/json",
          headers: dict | None = None) -> None:
    data = body.encode() if isinstance(body, str) else body
    h.send_response(code)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


def json_reply(h: Handler, code: int, obj) -> None:
    reply(h, code, json.dumps(obj))


def dag_row(dag_id: str, paused: bool = False, **extra) -> dict:
    d = {"dag_id": dag_id, "is_paused": paused, "is_stale": False, "tags": [], "owners": [],
         "has_import_errors": False, "fileloc": f"/dags/{dag_id}.py", "timetable_summary": None}
    d.update(extra)
    return d


DEFAULT_DAGS = [dag_row("billing_daily"), dag_row("etl_orders"), dag_row("report_daily", True)]


class HostileAirflow:
    """A fake Airflow 3 REST API (v2) that tests make misbehave one route at a time."""

    def __init__(self, tls: ssl.SSLContext | None = None, dags: list[dict] | None = None):
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self.dags = list(DEFAULT_DAGS if dags is None else dags)
        self.routes: dict[tuple[str, str], Route] = {}
        self._srv = _Server(("127.0.0.1", 0), Handler)
        self._srv.owner = self
        if tls is not None:
            self._srv.socket = tls.wrap_socket(self._srv.socket, server_side=True)
        self.port = self._srv.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()

    def __enter__(self) -> "HostileAirflow":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        self._srv.shutdown()
        self._srv.server_close()

    def route(self, method: str, path: str) -> Route:
        for (m, p), fn in self.routes.items():
            if m in (method, "*") and (path == p or (p.endswith("*") and path.startswith(p[:-1]))):
                return fn
        return self._default

    def mutations(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _, _ in self.requests
                if m in ("PATCH", "POST", "PUT", "DELETE") and p != "/auth/token"]

    def _default(self, h: Handler, body: bytes) -> None:
        path = urlsplit(h.path).path
        if path in ("/api/v2/version", "/api/v1/version"):
            json_reply(h, 200, {"version": "3.3.2", "git_version": None})
        elif path == "/auth/token":
            json_reply(h, 201, {"access_token": JWT})
        elif path == "/api/v2/dags":
            json_reply(h, 200, {"dags": self.dags, "total_entries": len(self.dags)})
        elif path.startswith("/api/v2/dags/") and (path.count("/") == 4
                                                   or path.endswith("/details")):
            wanted = path.removesuffix("/details").rsplit("/", 1)[1]
            row = next((d for d in self.dags if d.get("dag_id") == wanted), None)
            json_reply(h, 200, row) if row else json_reply(h, 404, {"detail": "Dag not found"})
        elif path.startswith("/api/v2/variables/"):
            json_reply(h, 404, {"detail": "Variable not found"})
        elif path == "/api/v2/eventLogs":
            json_reply(h, 200, {"event_logs": [], "total_entries": 0})
        elif path.endswith("/dagRuns"):
            json_reply(h, 200, {"dag_runs": [], "total_entries": 0})
        else:
            json_reply(h, 404, {"detail": "Not Found"})


# ---- hostile answers -------------------------------------------------------------------------

def echo_credentials(h: Handler, body: bytes) -> None:
    """A 500 whose body repeats everything the client sent, in every encoding."""
    auth = h.headers.get("Authorization", "")
    sent = body.decode("utf-8", "replace")
    words = [PASSWORD, USER, auth, sent]
    variants = []
    for w in words:
        variants += [w, json.dumps(w), quote(w), quote_plus(w), html.escape(w),
                     base64.b64encode(w.encode()).decode()]
    json_reply(h, 500, {"detail": " | ".join(variants), "request": sent, "headers": dict(h.headers)})


def drip(h: Handler, chunk: bytes, delay: float, total: int, headers_too: bool = False) -> None:
    """Send `total` chunks, one every `delay` seconds (each well inside a per-read timeout)."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(chunk) * total).encode() + b"\r\n\r\n")
    if headers_too:
        for i in range(len(head)):
            if h.server.owner.stop_event.wait(delay):
                return
            h.wfile.write(head[i:i + 1])
            h.wfile.flush()
        return
    h.wfile.write(head)
    for _ in range(total):
        if h.server.owner.stop_event.wait(delay):
            return
        h.wfile.write(chunk)
        h.wfile.flush()


def huge(h: Handler, size: int, chunked: bool) -> None:
    block = b'{"dags": [' + b'{"dag_id": "x"},' * 4096
    if chunked:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        sent = 0
        while sent < size and not h.server.owner.stop_event.is_set():
            h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            sent += len(block)
        h.wfile.write(b"0\r\n\r\n")
    else:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(size))
        h.end_headers()
        sent = 0
        while sent < size and not h.server.owner.stop_event.is_set():
            h.wfile.write(block)
            sent += len(block)


def gzip_bomb(h: Handler, size: int) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as z:
        z.write(b'{"dags": ["')
        zero = b"0" * (1 << 20)
        for _ in range(size >> 20):
            z.write(zero)
    reply(h, 200, buf.getvalue(), headers={"Content-Encoding": "gzip"})


def hang(h: Handler, body: bytes) -> None:
    h.server.owner.stop_event.wait(60)


def reset(h: Handler, body: bytes) -> None:
    """Drop the connection without an answer (linger 0: the close is a TCP RST)."""
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.close_connection = True


# ---- TLS material, made at test time with the openssl CLI -----------------------------------

def make_tls(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate it signs for 127.0.0.1, one it signs for another host name,
    and a self-signed certificate for 127.0.0.1. Returns the file paths."""
    tmp.mkdir(parents=True, exist_ok=True)

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=pausectl test CA")
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out",
         "self.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1")
    for name, san in (("good", "IP:127.0.0.1"), ("wronghost", "DNS:airflow.other.example")):
        (tmp / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={name}")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {p.stem + p.suffix.replace(".", "_"): p for p in tmp.iterdir()}


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
