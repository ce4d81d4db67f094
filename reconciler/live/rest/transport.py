"""One httpx client for one Airflow: every request, the logins and probes of the auth objects
included, runs within `timeout` seconds IN TOTAL and MAX_RESPONSE_BYTES, never follows a
redirect, and is retried (backoff, Retry-After) on 429/5xx, connection errors and bad JSON.
Errors are one line with every secret form scrubbed.

Within a `shared.shared_reads()` scope (a read-only fleet run), an authenticated GET another
backend already sent with the same URL, parameters and credentials is answered from that
response (shared.py); each caller parses its own copy and keeps its own errors."""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import httpx

from reconciler.core.errors import BackendError
from reconciler.live.rest import shared as _shared
from reconciler.live.rest.errors import (MAX_RESPONSE_BYTES, RETRY_STATUSES, BadBody, Body,
                                         Fatal, Retryable, dag_id_from_path, detail_text,
                                         is_tls_error, one_line, permission_for, retry_after,
                                         tls_reason)

log = logging.getLogger(__name__)

class Transport:
    """Sends requests for the backend `name`; `scrub` registers and removes its secrets."""

    def __init__(self, name: str, url: str, *, timeout: float, retries: int,
                 concurrency: int, verify: bool | ssl.SSLContext, max_retry_after: float,
                 scrub: Callable[[str], str], transport: httpx.BaseTransport | None = None):
        self.name, self.url = name, url
        self.timeout, self.retries, self.max_retry_after = timeout, retries, max_retry_after
        self.scrub = scrub
        self.backoff_base = 0.5
        self.backoff_max = 30.0
        #: injectable for tests: how to wait between retries, and the jitter source
        self.sleep: Callable[[float], None] = time.sleep
        self.random: Callable[[], float] = random.random
        self.closed = False
        # shared reads (shared.py) are shared only between transports that check TLS alike:
        # an answer fetched with verification off never reaches a backend that verifies
        self.tls_key = verify if isinstance(verify, bool) else id(verify)
        self.client = httpx.Client(
            transport=transport, verify=verify, timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency + 2,
                                max_keepalive_connections=concurrency + 2),
            headers={"Accept": "application/json", "User-Agent": "pausectl"},
        )

    def error(self, message: str, fatal: bool = False) -> BackendError:
        return (Fatal if fatal else BackendError)(self.scrub(one_line(message, 500)))

    def close(self) -> None:
        self.closed = True
        self.client.close()

    # ---------------------------------------------------------------- one exchange

    def exchange(self, request: httpx.Request) -> httpx.Response:
        """One HTTP exchange with the whole body read, within `timeout` seconds IN TOTAL (a
        server that drips one byte per second never trips a per-read timeout) and within
        MAX_RESPONSE_BYTES. Redirects are never followed: a 3xx is an error naming only the
        Location's path. The exchange runs on a daemon thread the caller stops waiting for
        at the deadline; closing the client ends it."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                resp = self.client.send(request, stream=True)
                try:
                    length = resp.headers.get("content-length", "")
                    if length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
                        raise BadBody(f"response of {int(length):,} bytes is over the "
                                      f"{MAX_RESPONSE_BYTES:,}-byte limit")
                    chunks, size = [], 0
                    for chunk in resp.iter_bytes():        # decoded: a gzip bomb counts too
                        size += len(chunk)
                        if size > MAX_RESPONSE_BYTES:
                            raise BadBody(f"response is over the {MAX_RESPONSE_BYTES:,}-byte "
                                          "limit; not read further")
                        if box.get("abandoned"):
                            return
                        chunks.append(chunk)
                finally:
                    resp.close()
                headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in
                           ("content-encoding", "content-length", "transfer-encoding")]
                body = Body(resp.status_code, headers=headers, content=b"".join(chunks),
                            request=request)
                body.scrub = not request.url.path.endswith("/auth/token")
                box["resp"] = body
            except BaseException as e:     # handed to the caller, which raises it
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=run, name=f"pausectl-http-{self.name}", daemon=True).start()
        if not done.wait(self.timeout):
            box["abandoned"] = True
            raise httpx.ReadTimeout(f"no complete response within {self.timeout:g}s")
        if "error" in box:
            raise box["error"]
        return box["resp"]

    def drive(self, request: httpx.Request, auth: httpx.Auth | None) -> httpx.Response:
        """Run `auth`'s auth_flow (httpx's generator protocol: it yields requests, gets their
        responses) with every request through exchange(). The answer is the last response to
        `request` itself (a flow may also send logins or probes, which are not answers)."""
        if auth is None:
            return self.exchange(request)
        flow = auth.auth_flow(request)
        answer: httpx.Response | None = None
        try:
            req = next(flow)
            while True:
                resp = self.exchange(req)
                if req is request:
                    answer = resp
                try:
                    req = flow.send(resp)
                except StopIteration:
                    return answer if answer is not None else resp
        finally:
            flow.close()

    # ---------------------------------------------------------------- one logical request

    def send(self, method: str, url: str, *, params: Any = None, json_body: Any = None,
             form: dict | None = None, auth: httpx.Auth | None = None,
             allow: Iterable[int] = (), expect_json: bool = True,
             retry_timeouts: bool = True) -> tuple[httpx.Response, Any]:
        """Retries, backoff, one-line errors. Returns (response, parsed JSON or None) for 2xx
        and statuses in `allow`; raises BackendError for everything else. `retry_timeouts`
        False: a read the server is too slow to answer in time is not asked again (a retry
        of a whole-graph build only multiplies the wait); faults are still retried."""
        if self.closed:
            raise BackendError(f"{self.name}: backend is closed")
        self.scrub("")             # secrets registered before any byte of the server's is read
        allow = set(allow)
        path = urlsplit(url).path
        shared = _shared.current()
        if shared is not None:
            def fetch() -> tuple[httpx.Response, Any]:
                return self._send(method, url, path, params, json_body, form, auth, allow,
                                  expect_json, retry_timeouts)
            if method != "GET":
                if not path.endswith(_shared.READ_POSTS):
                    shared.wrote()
                return fetch()
            if auth is None:       # logins and probes: they fill this client's cookie jar
                return fetch()
            key = (str(httpx.URL(url, params=params)), _shared.who(auth), self.tls_key,
                   tuple(sorted(allow)), expect_json)
            resp, data = shared.get(key, fetch)
            if data is None:       # another caller's answer (or none to parse): our own copy
                data = self._data(resp, f"{method} {path}", allow if expect_json else None)
            return resp, data
        return self._send(method, url, path, params, json_body, form, auth, allow,
                          expect_json, retry_timeouts)

    def _send(self, method: str, url: str, path: str, params: Any, json_body: Any,
              form: dict | None, auth: httpx.Auth | None, allow: set[int],
              expect_json: bool, retry_timeouts: bool = True) -> tuple[httpx.Response, Any]:
        what = f"{method} {path}"
        attempt = 0
        while True:
            try:
                resp = self._attempt(method, url, what, auth, params=params, json=json_body,
                                     data=form)
                code = resp.status_code
                log.debug("%s: %s -> %s", self.name, what, code)
                if code in RETRY_STATUSES and code not in allow:
                    raise Retryable("status", f"HTTP {code} {self.detail(resp)}".strip(), resp)
                if code < 300 or code in allow:
                    return resp, self._data(resp, what, allow if expect_json else None)
                raise self.status_error(method, path, resp)
            except Retryable as r:
                if attempt >= self.retries or (r.kind == "timeout" and not retry_timeouts):
                    raise self.exhausted(what, r, attempt + 1) from None
                delay = self.delay(attempt, r.response)
                log.info("%s: %s: %s; retry %d/%d in %.1fs", self.name, what,
                         self.scrub(r.detail), attempt + 1, self.retries, delay)
                self.sleep(delay)
                attempt += 1

    def _attempt(self, method: str, url: str, what: str, auth: httpx.Auth | None,
                 **kw: Any) -> httpx.Response:
        """One attempt (the auth flow's requests included), transport errors classified."""
        try:
            return self.drive(self.client.build_request(method, url, **kw), auth)
        except BadBody as e:
            raise self.error(f"{self.name}: {what}: {e}") from None
        except httpx.ConnectError as e:
            if is_tls_error(e):
                raise self.error(f"TLS verification failed for {self.url}: {tls_reason(e)} "
                                 "(set ca_bundle to your CA file)", fatal=True) from None
            raise Retryable("connect", one_line(e, 200) or "connection failed") from None
        except httpx.TimeoutException as e:
            raise Retryable("timeout", type(e).__name__) from None
        except httpx.TransportError as e:
            if is_tls_error(e):
                raise self.error(f"TLS verification failed for {self.url}: {tls_reason(e)}",
                                 fatal=True) from None
            raise Retryable("network", f"{type(e).__name__}: {one_line(e, 150)}") from None

    def _data(self, resp: httpx.Response, what: str, allow: set[int] | None) -> Any:
        """The parsed body of an accepted answer (None for no JSON expected, 204, empty)."""
        code = resp.status_code
        if allow is None or not resp.content or code == 204:
            return None
        if code >= 300:           # an allowed error status: its body if it is JSON
            try:
                return resp.json()
            except ValueError:
                return None
        if "html" in resp.headers.get("content-type", ""):
            raise self.error(f"{self.name}: {what} returned HTML, not JSON; is {self.url} the "
                             "Airflow base URL (no login proxy in front)?", fatal=True)
        try:
            return resp.json()
        except BadBody as e:
            raise self.error(f"{self.name}: {what} returned unusable JSON ({e})") from None
        except ValueError as e:
            raise Retryable("json", f"invalid JSON ({one_line(e, 100)})") from None

    # ---------------------------------------------------------------- errors and waits

    def detail(self, resp: httpx.Response) -> str:
        """A server's error detail as one line: never a workflow command, every secret form
        scrubbed (a proxy may echo the request it was sent)."""
        from reconciler.core.sanitize import term
        return self.scrub(term(detail_text(resp)))

    def delay(self, attempt: int, resp: httpx.Response | None) -> float:
        ra = retry_after(resp)
        if ra is not None:
            return min(ra, self.max_retry_after)
        base = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return base * (0.5 + 0.5 * self.random())

    def exhausted(self, what: str, r: Retryable, attempts: int) -> BackendError:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if r.kind == "connect":
            return self.error(f"cannot reach {self.name} at {self.url} ({what}: {r.detail}; "
                              f"{tries})", fatal=True)
        if r.kind == "timeout":
            return self.error(f"{self.name}: {what} timed out after {self.timeout:g}s "
                              f"({tries}) at {self.url}", fatal=True)
        if r.kind == "network":
            return self.error(f"{self.name}: {what} failed at {self.url}: {r.detail} ({tries})",
                              fatal=True)
        if r.kind == "json":
            return self.error(f"{self.name}: {what} returned {r.detail} ({tries})")
        return self.error(f"{self.name}: {what} failed: {r.detail} ({tries})")

    def status_error(self, method: str, path: str, resp: httpx.Response) -> BackendError:
        code = resp.status_code
        detail = self.detail(resp)
        if code == 403:      # not fatal: Airflow can grant access per DAG
            return self.error(f"permission denied for {self.name}: {method} {path} needs "
                              f"{permission_for(method, path)}"
                              + (f" ({detail})" if detail else ""))
        if 300 <= code < 400:
            loc = resp.headers.get("location", "")
            return self.error(f"{self.name}: {method} {path} was redirected to "
                              f"{urlsplit(loc).path or loc!s} (HTTP {code}); is {self.url} the "
                              "Airflow base URL, without a login proxy?", fatal=True)
        if code == 404 and "/dags/" in path:
            dag_id = dag_id_from_path(path)
            if dag_id is not None:
                return self.error(f"DAG {dag_id} not found in {self.name}")
        return self.error(f"{self.name}: {method} {path} failed: HTTP {code}"
                          + (f" {detail}" if detail else ""))
