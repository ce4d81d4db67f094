"""The `airflow-api` backend: Airflow's REST API, v2 (Airflow 3) or v1 (Airflow 2), over httpx.

Config (the environment's `backend:` mapping in pausectl.yaml)::

    type: airflow-api
    url: https://airflow.example.com      # the api-server (AF3) / webserver (AF2) base URL
    api: auto                             # auto | v1 | v2
    auth: password-token                  # none | basic | bearer | password-token
    username_env: AIRFLOW_USER            # env var names; the values never leave this module
    password_env: AIRFLOW_PASSWORD
    token_env: AIRFLOW_TOKEN              # auth: bearer
    ca_bundle: /path/ca.pem               # else the system CAs; TLS verification is always on ...
    insecure: false                       # ... unless this is explicitly true
    timeout: 10                           # seconds, per request
    retries: 4                            # extra attempts on 429/5xx/connection errors/bad JSON
    concurrency: 8                        # parallel single-DAG PATCHes
    page_size: 100                        # the server caps it at [api] maximum_page_limit
    bulk: true                            # use the verified bulk-PATCH fast path in set_paused
    bulk_min: 16                          # ... for groups of at least this many DAGs
    max_pattern_length: 6000              # longest dag_id_pattern sent in a URL
    parallel_pages: false                 # fetch list pages concurrently after the first
    audit_limit: 1000                     # most events audit_events reads
    max_retry_after: 60                   # cap on a server's Retry-After, seconds
    create_settle: 0.5                    # create_variable re-reads after this many seconds

Design notes (measured against real Airflow 3.3.2 and 2.11.2; tests in
tests/test_airflow_api_faults.py and tests/test_airflow_api_live.py):

* Detection (`api: auto`): GET {url}/api/v2/version (unauthenticated on AF3), then
  /api/v1/version (unauthenticated on AF2). 401/403 on a version path also proves it exists.
* password-token on v2 POSTs {url}/auth/token; on a 401 ("Token Expired") or AF3's 403
  "Invalid JWT token" (a token signed before the server restarted with a new secret) the token
  is fetched again once and the request retried. AF2 has no /auth/token: password-token there
  logs in once through the webserver's login form and sends only the session cookie (AF2's
  default `session` API auth backend); HTTP basic costs AF2 a password-hash check on every
  request (~140 ms CPU, measured: 5x slower per request under load). If the form or the
  session does not work, it falls back to HTTP basic.
* AF2 answers 403 (not 401) for a wrong password, exactly as for a missing permission: a 403
  is told apart by one read-only probe (GET /dags?limit=1); once basic credentials are proven
  good the probe is not repeated, a session is re-checked (and re-logged-in once) each time.
* Permission errors (403) are per call, not fatal: Airflow can grant access per DAG.
  Authentication, TLS and unreachable-server errors are fatal: set_paused stops sending and
  marks every remaining DAG with that one-line error.
* Capabilities by version: the first request reads /version (GET {url}/api/v2/version or
  /api/v1/version, once) and `capabilities.py` derives what this server does correctly: bulk
  PATCH scope (3.2.2+ every match; 3.0-3.2.1 and AF2 one page), the `paused` filter on it,
  `|` in dag_id_pattern (3.2.1+), dag_id_prefix_pattern (3.2.2+), trustworthy event values.
* set_paused never changes a DAG outside the requested set. Its fast path (bulk.py) sends a
  bulk PATCH /dags?<pattern> only after a GET with the same pattern (stale DAGs included)
  showed that no DAG outside the set that the PATCH would flip matches; terms are shared
  prefixes where the last list_dags() shows they match nothing else, else exact ids. Where
  the server updates one page per PATCH the request is repeated (`paused=!target`) or paged
  (AF2: by offset, ordered by dag_id). Every bulk change is then verified by listing the
  pattern again and checking each DAG's is_paused, never by total_entries; what is still at
  the old state gets a single PATCH, and a DAG outside the set that a response proves was
  flipped is put back. `pause_except` (the emergency path) does the same from a listing
  just taken, avoiding only the DAGs to keep.
* `changed` in SetPausedResult lists every requested DAG that is now confirmed at the requested
  state (including one that already was); `errors` holds the others, one line each, so
  changed + errors == the requested set. Only if a concurrent change made a bulk PATCH touch a
  DAG outside the set that could not be put back does `errors` also name that DAG. Pre-flight
  failures (detection, login) raise BackendError.
* create_variable is NOT atomic on either server (read in the source, and measured): AF3
  3.3.2's POST /variables checks for the key and then upserts (409 only if the key already
  existed when checked; concurrent creators can both get 201, and 8 concurrent POSTs on
  SQLite stalled the server for ~50 s with 500s), and AF2's POST /variables is a plain upsert.
  This backend narrows the race: v1 GETs first; both re-read the value after `create_settle`
  seconds and return True only if it is this caller's (a 409 is re-read too: a retried POST
  whose first attempt landed answers 409). Use a value unique to the caller.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote, urlsplit

import httpx

from reconciler.core.errors import BackendError
from reconciler.live import bulk as _bulk
from reconciler.live.base import AuditEvent, DagRun, LiveDag, Progress, SetPausedResult
from reconciler.live.capabilities import Capabilities, capabilities_for
from reconciler.live.events import (attribute, bulk_event_names, command_line, event_names,
                     ilike_matches, normalise)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
AUTH_MODES = ("none", "basic", "bearer", "password-token")
API_MODES = ("auto", "v1", "v2")
# What Airflow accepts as a dag_id (airflow.utils.helpers.KEY_REGEX); only such ids go in a pattern.
_DAG_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
__all__ = ["AirflowApiBackend", "ilike_matches", "command_line"]

_DEFAULTS: dict[str, Any] = {
    "api": "auto", "auth": "password-token", "username_env": "AIRFLOW_USER",
    "password_env": "AIRFLOW_PASSWORD", "token_env": "AIRFLOW_TOKEN", "ca_bundle": None,
    "insecure": False, "timeout": 10, "retries": 4, "concurrency": 8, "page_size": 100,
    "bulk": True, "bulk_min": 16, "max_pattern_length": 6000, "parallel_pages": False,
    "audit_limit": 1000, "max_retry_after": 60, "create_settle": 0.5,
}


class _Secret:
    """A credential that never shows itself in repr/str/logs."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class _Fatal(BackendError):
    """An error every further request would hit too (auth, TLS, server unreachable)."""


class _Retryable(Exception):
    def __init__(self, kind: str, detail: str, response: httpx.Response | None = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.response = response


def _one_line(text: Any, limit: int = 300) -> str:
    from reconciler.core.sanitize import one_line
    return one_line(text, limit)


# Bounds on what a server may send (a hostile or broken one must not exhaust the runner)
MAX_RESPONSE_BYTES = 32 * 1024 * 1024     # one response body, after decompression


class _BadBody(ValueError):
    """A response body no retry can fix (too big, too deep, NaN): one line, not retried."""


class _JsonError(BackendError):
    pass


def _loads(content: bytes | str, scrub: bool = True) -> Any:
    """JSON from a server through the shared bounded parser (safejson: no NaN/Infinity, no
    huge numbers, bounded depth), then every secret form scrubbed from its strings before
    anyone reads them. Invalid JSON (perhaps truncated) is a ValueError the caller retries;
    what no retry can fix is a _BadBody."""
    from reconciler.core.safejson import loads
    try:
        data = loads(content, None, error=_JsonError, what="JSON")
    except _JsonError as e:
        msg = e.message.removeprefix("JSON: ")
        if msg.startswith("invalid JSON: "):
            raise ValueError(msg.removeprefix("invalid JSON: ")) from None
        raise _BadBody(msg) from None
    from reconciler.core.secrets import scrub_tree
    return scrub_tree(data) if scrub else data


_DAG_FIELDS = (("dag_id", (str,), "a string"), ("is_paused", (bool, type(None)), "a boolean"),
               ("is_stale", (bool, type(None)), "a boolean"),
               ("is_active", (bool, type(None)), "a boolean"),
               ("has_import_errors", (bool, type(None)), "a boolean"),
               ("tags", (list, type(None)), "a list"), ("owners", (list, str, type(None)), "a list"))


def _dag_field_error(row: dict) -> str | None:
    """`field as TYPE, not EXPECTED` for the first DAG field of the wrong JSON type."""
    for name, types, expected in _DAG_FIELDS:
        value = row.get(name)
        if not isinstance(value, types) or (name == "dag_id" and not value):
            return f"{name} as {type(value).__name__}, not {expected}"
    return None


class _Body(httpx.Response):
    """A response whose body was read under the byte cap; .json() is the bounded parser."""

    #: False only for /auth/token, whose access_token IS the secret the caller asked for
    scrub = True

    def json(self, **kwargs: Any) -> Any:
        return _loads(self.content, scrub=self.scrub)


def _parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _retry_after(resp: httpx.Response | None) -> float | None:
    if resp is None:
        return None
    raw = resp.headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _is_tls_error(exc: BaseException) -> bool:
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 10:
        if isinstance(e, ssl.SSLError):
            return True
        text = str(e)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL:" in text or "certificate verify" in text:
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def _tls_reason(exc: BaseException) -> str:
    e: BaseException | None = exc
    while e is not None:
        if isinstance(e, ssl.SSLCertVerificationError) and getattr(e, "verify_message", None):
            return str(e.verify_message)
        e = e.__cause__ or e.__context__
    return _one_line(exc, 200)


def _permission_for(method: str, path: str) -> str:
    """What an Airflow role needs for this call, for a 403 message."""
    p = path.split("?")[0]
    write = method in ("PATCH", "POST", "PUT", "DELETE")
    if "/eventLogs" in p:
        return "Audit Logs read permission"
    if "/dagRuns" in p:
        return "DAG Runs read permission"
    if "/variables" in p:
        verb = {"GET": "read", "POST": "create", "PATCH": "edit", "PUT": "edit",
                "DELETE": "delete"}.get(method, "edit")
        return f"Variables {verb} permission"
    if "/dags" in p:
        return "DAGs edit permission" if write else "DAGs read permission"
    return "a permission the user lacks"


class AirflowApiBackend:
    """Airflow over its REST API. Thread-safe; one httpx.Client, one small thread pool."""

    type = "airflow-api"

    def __init__(self, name: str, config: Mapping[str, Any], *,
                 env: Mapping[str, str] = os.environ,
                 transport: httpx.BaseTransport | None = None):
        self.name = name
        cfg = dict(_DEFAULTS)
        cfg.update({k: v for k, v in dict(config or {}).items() if v is not None})
        self._cfg_errors(cfg)
        url = str(cfg["url"]).strip().rstrip("/")
        self.url = url
        self.api_mode: str = cfg["api"]
        self.api: str | None = None if self.api_mode == "auto" else self.api_mode
        self.server_version: str | None = None
        self.auth_mode: str = cfg["auth"]
        self.timeout = float(cfg["timeout"])
        self.retries = int(cfg["retries"])
        self.concurrency = int(cfg["concurrency"])
        self.page_size = int(cfg["page_size"])
        self.bulk = bool(cfg["bulk"])
        self.bulk_min = max(1, int(cfg["bulk_min"]))
        self.max_pattern_length = int(cfg["max_pattern_length"])
        self.parallel_pages = bool(cfg["parallel_pages"])
        self.audit_limit = int(cfg["audit_limit"])
        self.max_retry_after = float(cfg["max_retry_after"])
        self.create_settle = float(cfg["create_settle"])
        self.backoff_base = 0.5
        self.backoff_max = 30.0
        #: injectable for tests: how to wait between retries, and the jitter source
        self.sleep: Callable[[float], None] = time.sleep
        self.random: Callable[[], float] = random.random

        self._user_env = str(cfg["username_env"])
        self._password_env = str(cfg["password_env"])
        self._token_env = str(cfg["token_env"])
        self._username: str | None = None
        self._password: _Secret | None = None
        self._static_token: _Secret | None = None
        if self.auth_mode in ("basic", "password-token"):
            self._username = self._env(env, self._user_env)
            self._password = _Secret(self._env(env, self._password_env))
        elif self.auth_mode == "bearer":
            self._static_token = _Secret(self._env(env, self._token_env))

        verify: bool | ssl.SSLContext = True
        if cfg["insecure"] is True:
            verify = False
            log.warning("%s: TLS certificate verification is disabled (insecure: true)", name)
        elif cfg["ca_bundle"]:
            path = os.path.expanduser(str(cfg["ca_bundle"]))
            if not os.path.isfile(path):
                raise BackendError(f"{name}: ca_bundle {path} is not a readable file")
            try:
                verify = ssl.create_default_context(cafile=path)
            except (ssl.SSLError, OSError, ValueError) as e:
                raise BackendError(f"{name}: ca_bundle {path} is not a usable PEM CA file: "
                                   f"{_one_line(e, 150)}") from None
        self._client = httpx.Client(
            transport=transport, verify=verify, timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=self.concurrency + 2,
                                max_keepalive_connections=self.concurrency + 2),
            headers={"Accept": "application/json", "User-Agent": "pausectl"},
        )
        self._token: _Secret | None = None
        self._token_gen = 0
        self._auth_lock = threading.Lock()
        self._init_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._ready = False
        self._auth_ok = False          # an authenticated request has succeeded
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._known: dict[str, bool] | None = None   # the last list_dags(): id -> is_paused
        self._session = False          # AF2: authenticated by a login-form session cookie
        #: what this server's version does correctly; read from /version once (capabilities.py)
        self.capabilities: Capabilities | None = None
        self.bulk_requests = 0         # bulk PATCH /dags requests sent (for tests and metrics)

    # ---------------------------------------------------------------- config and secrets

    def _cfg_errors(self, cfg: dict) -> None:
        n = self.name
        url = cfg.get("url")
        if not url or not isinstance(url, str):
            raise BackendError(f"{n}: backend url is required for type airflow-api")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"{n}: backend url must be http(s)://host[:port][/path], "
                               f"got scheme {parts.scheme or '(none)'!r}")
        if parts.username is not None or parts.password is not None:
            raise BackendError(f"{n}: backend url must not contain credentials; "
                               "use username_env/password_env or token_env")
        if parts.query or parts.fragment:
            raise BackendError(f"{n}: backend url must not have a query or fragment")
        if cfg["api"] not in API_MODES:
            raise BackendError(f"{n}: backend api must be one of {', '.join(API_MODES)}, "
                               f"got {cfg['api']!r}")
        if cfg["auth"] not in AUTH_MODES:
            raise BackendError(f"{n}: backend auth must be one of {', '.join(AUTH_MODES)}, "
                               f"got {cfg['auth']!r}")
        if not isinstance(cfg["insecure"], bool):
            raise BackendError(f"{n}: backend insecure must be true or false")
        for key, lo in (("timeout", 0.001), ("retries", 0), ("concurrency", 1), ("page_size", 1),
                        ("bulk_min", 1), ("max_pattern_length", 100), ("audit_limit", 1),
                        ("max_retry_after", 0), ("create_settle", 0)):
            val = cfg[key]
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < lo:
                raise BackendError(f"{n}: backend {key} must be a number >= {lo}, got {val!r}")
        for key in ("username_env", "password_env", "token_env"):
            if not isinstance(cfg[key], str) or not cfg[key]:
                raise BackendError(f"{n}: backend {key} must name an environment variable")

    def _env(self, env: Mapping[str, str], var: str) -> str:
        val = env.get(var)
        if not val:
            raise BackendError(f"{self.name}: environment variable {var} is not set "
                               f"(needed for auth: {self.auth_mode})")
        return val

    def _secrets(self) -> list[str]:
        """The credentials in use, each registered with the process-wide scrubber (every
        encoding of it: reconciler/core/secrets.py), which the CLI's output guard also applies."""
        from reconciler.core.secrets import register, register_pair
        out = []
        for s in (self._password, self._static_token, self._token):
            if s is not None and len(s.value) >= 3:
                out.append(s.value)
                if s is not self._password:
                    register(s.value)
                elif s.value == self._username:
                    # a password equal to the user name hides nothing; its Basic pair does
                    register_pair(self._username, s.value)
                else:
                    register(s.value, self._username)
        return out

    def _scrub(self, text: str) -> str:
        from reconciler.core.secrets import scrub
        self._secrets()
        return scrub(text)

    def _error(self, message: str, fatal: bool = False) -> BackendError:
        cls = _Fatal if fatal else BackendError
        return cls(self._scrub(_one_line(message, 500)))

    def __repr__(self) -> str:
        return (f"AirflowApiBackend(name={self.name!r}, url={self.url!r}, "
                f"api={self.api or self.api_mode!r}, auth={self.auth_mode!r})")

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> "AirflowApiBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._init_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                                    thread_name_prefix=f"pausectl-{self.name}")
        return self._pool

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        with self._init_lock:
            if self._ready:
                return
            if self._closed:
                raise BackendError(f"{self.name}: backend is closed")
            if self.api is None:
                self.api = self._detect()
            elif self.server_version is None:
                self._read_version(authenticate=False)
            if self._uses_token():
                self._login()
            elif self._may_use_session():
                self._session_login()
            if self.server_version is None:     # /version needed credentials here
                self._read_version(authenticate=True)
            self.capabilities = capabilities_for(self.server_version, self.api)
            if self.server_version is None:
                log.warning("%s: could not read the Airflow version at %s/api/%s/version; "
                            "using the most conservative bulk strategy", self.name, self.url,
                            self.api)
            elif not self.capabilities.supported:
                log.warning("%s: Airflow %s is outside the supported range (2.9 through 3.3)",
                            self.name, self.server_version)
            self._ready = True

    def _read_version(self, authenticate: bool) -> None:
        """GET /api/<api>/version once; a server that hides it leaves server_version None."""
        try:
            resp, data = self._send("GET", f"{self.url}/api/{self.api}/version",
                                    authenticate=authenticate, allow=(401, 403, 404, 405))
        except _Fatal:
            raise
        except BackendError as e:
            log.debug("%s: /version not read: %s", self.name, e)
            return
        if resp.status_code < 300 and isinstance(data, dict) and data.get("version"):
            self.server_version = str(data["version"])

    def caps(self) -> Capabilities:
        """This server's Capabilities (reads /version on first use)."""
        self._ensure_ready()
        assert self.capabilities is not None
        return self.capabilities

    def _uses_token(self) -> bool:
        return self.auth_mode == "password-token" and self.api == "v2"

    def _may_use_session(self) -> bool:
        return self.auth_mode == "password-token" and self.api == "v1"

    def _auth_hint(self) -> str:
        if self.auth_mode == "bearer":
            return f"check {self._token_env}"
        if self.auth_mode == "none":
            return "the server needs credentials but auth is none"
        return f"check {self._user_env} and {self._password_env}"

    def _auth_failed(self) -> BackendError:
        return self._error(f"authentication failed for {self.name} ({self._auth_hint()})",
                           fatal=True)

    # ---------------------------------------------------------------- HTTP core

    def _auth_kwargs(self) -> tuple[dict, Any, int]:
        """Headers and httpx auth for the next request, plus the token generation used."""
        if self.auth_mode == "bearer":
            assert self._static_token is not None
            return {"Authorization": f"Bearer {self._static_token.value}"}, None, 0
        if self.auth_mode == "none":
            return {}, None, 0
        if self._uses_token():
            with self._auth_lock:
                tok, gen = self._token, self._token_gen
            if tok is not None:
                return {"Authorization": f"Bearer {tok.value}"}, None, gen
            return {}, None, gen
        if self._session:
            with self._auth_lock:
                return {}, None, self._token_gen          # the session cookie authenticates
        assert self._username is not None and self._password is not None
        return {}, httpx.BasicAuth(self._username, self._password.value), 0

    def _session_login(self) -> bool:
        """AF2, auth: password-token: log in through the webserver's login form once and use
        its session cookie (Airflow's `session` API auth backend, the AF2 default).

        Measured: with HTTP basic, AF2 checks the password hash on EVERY request (~140 ms of
        CPU each, one of the webserver's few workers busy meanwhile); with the session a
        request costs ~5 ms. Falls back to basic auth when the form is not the standard one
        or /api/v1 does not accept the session (auth_backends without `session`)."""
        assert self._username is not None and self._password is not None
        ok = False
        try:
            self._client.cookies.clear()       # a logged-in /login/ redirects instead of a form
            # 429 is allowed (not retried): AF2 rate-limits its login form (default 5 per 40 s
            # per client); the session is only an optimisation, so fall back to basic at once
            page, _ = self._send("GET", f"{self.url}/login/", authenticate=False,
                                 expect_json=False, allow=(302, 401, 403, 404, 405, 429))
            m = (re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page.text)
                 or re.search(r'<input[^>]*value="([^"]+)"[^>]*name="csrf_token"', page.text))
            if page.status_code == 200 and m:
                posted, _ = self._send(
                    "POST", f"{self.url}/login/", authenticate=False, expect_json=False,
                    form={"username": self._username, "password": self._password.value,
                          "csrf_token": m.group(1)},
                    allow=(200, 302, 303, 400, 401, 403, 429))
                if posted.status_code in (302, 303):     # FAB redirects after a login
                    check = self._client.get(f"{self.url}/api/v1/dags", params={"limit": 1})
                    ok = check.status_code == 200
        except _Fatal:
            raise
        except (BackendError, httpx.HTTPError) as e:
            log.debug("%s: session login failed (%s)", self.name, self._scrub(str(e)))
        with self._auth_lock:
            self._session = ok
            self._token_gen += 1
            self._auth_ok = False      # basic credentials, if we fall back, are not proven
        if not ok:
            self._client.cookies.clear()
            log.debug("%s: no AF2 login session; using HTTP basic auth", self.name)
        return ok

    def _login(self) -> None:
        """POST {url}/auth/token -> access_token (AF3 SimpleAuthManager / FAB auth manager)."""
        assert self._username is not None and self._password is not None
        resp, data = self._send("POST", f"{self.url}/auth/token", authenticate=False,
                                json_body={"username": self._username,
                                           "password": self._password.value},
                                allow=(400, 401, 403, 404, 422))
        if resp.status_code in (400, 401, 403, 422):
            raise self._auth_failed()
        if resp.status_code == 404:
            raise self._error(f"{self.name}: {self.url}/auth/token not found; use auth: basic "
                              "or bearer for this server", fatal=True)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise self._error(f"{self.name}: POST /auth/token returned no access_token", fatal=True)
        with self._auth_lock:
            self._token = _Secret(token)
            self._token_gen += 1

    def _refresh(self, seen_gen: int) -> None:
        with self._refresh_lock:
            with self._auth_lock:
                if self._token_gen != seen_gen:
                    return       # another thread already refreshed
            if self._uses_token():
                self._login()
            else:
                self._session_login()

    def _detail(self, resp: httpx.Response) -> str:
        """A server's error detail as one line of at most 200 characters: never a workflow
        command, every secret form scrubbed (a proxy may echo the request it was sent)."""
        from reconciler.core.sanitize import term
        return self._scrub(term(self._detail_text(resp)))

    def _detail_text(self, resp: httpx.Response) -> str:
        try:
            data = resp.json()
        except ValueError:
            text = resp.text.strip()
            if "<html" in text[:500].lower() or text.startswith("<"):
                return ""
            return _one_line(text, 200)
        if isinstance(data, dict):
            d = data.get("detail")
            if isinstance(d, list):
                msgs = []
                for item in d[:3]:
                    if isinstance(item, dict):
                        loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                        msgs.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
                    else:
                        msgs.append(str(item))
                return _one_line("; ".join(msgs), 200)
            if d:
                return _one_line(d, 200)
            if data.get("title"):
                return _one_line(data["title"], 200)
        return _one_line(json.dumps(data), 200) if data else ""

    def _send(self, method: str, url: str, *, params: Any = None, json_body: Any = None,
              form: dict | None = None, authenticate: bool = True, allow: Iterable[int] = (),
              expect_json: bool = True) -> tuple[httpx.Response, Any]:
        """One logical request: retries, backoff, token refresh, one-line errors.

        Returns (response, parsed JSON or None) for 2xx and statuses in `allow`;
        raises BackendError for everything else.
        """
        if self._closed:
            raise BackendError(f"{self.name}: backend is closed")
        self._secrets()            # registered before any byte of the server's is read
        allow = set(allow)
        path = urlsplit(url).path
        what = f"{method} {path}"
        attempt = 0
        refreshed = False
        while True:
            headers, auth, gen = self._auth_kwargs() if authenticate else ({}, None, 0)
            resp: httpx.Response | None = None
            try:
                try:
                    resp = self._exchange(method, url, params=params, json=json_body,
                                          data=form, headers=headers, auth=auth)
                    resp.scrub = not path.endswith("/auth/token")
                except _BadBody as e:
                    raise self._error(f"{self.name}: {what}: {e}") from None
                except httpx.ConnectError as e:
                    if _is_tls_error(e):
                        raise self._error(f"TLS verification failed for {self.url}: "
                                          f"{_tls_reason(e)} (set ca_bundle to your CA file)",
                                          fatal=True) from None
                    raise _Retryable("connect", _one_line(e, 200) or "connection failed") from None
                except httpx.TimeoutException as e:
                    raise _Retryable("timeout", type(e).__name__) from None
                except httpx.TransportError as e:
                    if _is_tls_error(e):
                        raise self._error(f"TLS verification failed for {self.url}: "
                                          f"{_tls_reason(e)}", fatal=True) from None
                    raise _Retryable("network",
                                     f"{type(e).__name__}: {_one_line(e, 150)}") from None
                code = resp.status_code
                log.debug("%s: %s -> %s", self.name, what, code)
                if authenticate and self._is_auth_failure(resp):
                    if self.api == "v1":
                        # AF2: the same 403 for bad credentials, a dead session and a missing
                        # permission: ask a read-only endpoint whether we are logged in
                        if (self._auth_ok and not self._session) or self._probe_auth():
                            pass                    # a real permission error, below
                        elif self._session and not refreshed:
                            refreshed = True
                            self._refresh(gen)
                            continue
                        else:
                            raise self._auth_failed()
                    elif self._uses_token() and not refreshed:
                        refreshed = True
                        self._refresh(gen)
                        continue
                    else:
                        raise self._auth_failed()
                if code in RETRY_STATUSES and code not in allow:
                    raise _Retryable("status", f"HTTP {code} {self._detail(resp)}".strip(), resp)
                if code < 300 or code in allow:
                    data = None
                    if expect_json and code < 300 and code != 204 and resp.content:
                        ctype = resp.headers.get("content-type", "")
                        if "html" in ctype:
                            raise self._error(
                                f"{self.name}: {what} returned HTML, not JSON; is {self.url} the "
                                "Airflow base URL (no login proxy in front)?", fatal=True)
                        try:
                            data = resp.json()
                        except _BadBody as e:
                            raise self._error(f"{self.name}: {what} returned unusable JSON "
                                              f"({e})") from None
                        except ValueError as e:
                            raise _Retryable(
                                "json", f"invalid JSON ({_one_line(e, 100)})") from None
                    elif expect_json and code in allow and resp.content:
                        try:
                            data = resp.json()
                        except ValueError:
                            data = None
                    if authenticate and code < 300:
                        self._auth_ok = True
                    return resp, data
                raise self._status_error(method, path, resp)
            except _Retryable as r:
                if attempt >= self.retries:
                    raise self._exhausted(what, r, attempt + 1) from None
                delay = self._delay(attempt, r.response)
                log.info("%s: %s: %s; retry %d/%d in %.1fs", self.name, what,
                         self._scrub(r.detail), attempt + 1, self.retries, delay)
                self.sleep(delay)
                attempt += 1

    def _exchange(self, method: str, url: str, *, auth: Any = None, **kw: Any) -> httpx.Response:
        """One HTTP exchange with the whole body read, within `timeout` seconds IN TOTAL (a
        server that drips one byte per second never trips a per-read timeout) and within
        MAX_RESPONSE_BYTES. Redirects are never followed (follow_redirects=False): a 3xx is
        an error naming only the Location's path. The exchange runs on a daemon thread the
        caller stops waiting for at the deadline; closing the client ends it."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                request = self._client.build_request(method, url, **kw)
                resp = self._client.send(request, auth=auth, stream=True)
                try:
                    length = resp.headers.get("content-length", "")
                    if length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
                        raise _BadBody(f"response of {int(length):,} bytes is over the "
                                       f"{MAX_RESPONSE_BYTES:,}-byte limit")
                    chunks, size = [], 0
                    for chunk in resp.iter_bytes():        # decoded: a gzip bomb counts too
                        size += len(chunk)
                        if size > MAX_RESPONSE_BYTES:
                            raise _BadBody(f"response is over the {MAX_RESPONSE_BYTES:,}-byte "
                                           "limit; not read further")
                        if box.get("abandoned"):
                            return
                        chunks.append(chunk)
                finally:
                    resp.close()
                headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in
                           ("content-encoding", "content-length", "transfer-encoding")]
                box["resp"] = _Body(resp.status_code, headers=headers, content=b"".join(chunks),
                                    request=request)
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

    def _is_auth_failure(self, resp: httpx.Response) -> bool:
        if resp.status_code == 401:
            return True
        if resp.status_code == 403:
            if self.api == "v1":
                return True           # AF2: bad credentials and missing permission look alike
            try:
                detail = resp.json().get("detail")
            except (ValueError, AttributeError):
                return False
            # AF3: a token the server cannot verify (e.g. signed before a restart) -> 403
            return isinstance(detail, str) and "invalid jwt" in detail.lower()
        return False

    def _probe_auth(self) -> bool:
        """AF2 only: are we authenticated? (403 means bad password OR no permission)."""
        headers, auth, _ = self._auth_kwargs()
        try:
            r = self._client.get(f"{self.url}/api/v1/dags", params={"limit": 1},
                                 headers=headers, auth=auth)
        except httpx.HTTPError:
            return False
        if r.status_code < 300 and not self._session:
            self._auth_ok = True       # basic credentials do not expire: no need to ask again
        return r.status_code < 300

    def _delay(self, attempt: int, resp: httpx.Response | None) -> float:
        ra = _retry_after(resp)
        if ra is not None:
            return min(ra, self.max_retry_after)
        base = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return base * (0.5 + 0.5 * self.random())

    def _exhausted(self, what: str, r: _Retryable, attempts: int) -> BackendError:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if r.kind == "connect":
            return self._error(f"cannot reach {self.name} at {self.url} ({what}: {r.detail}; "
                               f"{tries})", fatal=True)
        if r.kind == "timeout":
            return self._error(f"{self.name}: {what} timed out after {self.timeout:g}s "
                               f"({tries}) at {self.url}", fatal=True)
        if r.kind == "network":
            return self._error(f"{self.name}: {what} failed at {self.url}: {r.detail} ({tries})",
                               fatal=True)
        if r.kind == "json":
            return self._error(f"{self.name}: {what} returned {r.detail} ({tries})")
        return self._error(f"{self.name}: {what} failed: {r.detail} ({tries})")

    def _status_error(self, method: str, path: str, resp: httpx.Response) -> BackendError:
        code = resp.status_code
        detail = self._detail(resp)
        if code == 403:      # not fatal: Airflow can grant access per DAG
            return self._error(f"permission denied for {self.name}: {method} {path} needs "
                               f"{_permission_for(method, path)}"
                               + (f" ({detail})" if detail else ""))
        if 300 <= code < 400:
            loc = resp.headers.get("location", "")
            return self._error(f"{self.name}: {method} {path} was redirected to "
                               f"{urlsplit(loc).path or loc!s} (HTTP {code}); is {self.url} the "
                               "Airflow base URL, without a login proxy?", fatal=True)
        if code == 404 and "/dags/" in path:
            dag_id = _dag_id_from_path(path)
            if dag_id is not None:
                return self._error(f"DAG {dag_id} not found in {self.name}")
        return self._error(f"{self.name}: {method} {path} failed: HTTP {code}"
                           + (f" {detail}" if detail else ""))

    # paths under the detected API root

    def _api_url(self, path: str) -> str:
        return f"{self.url}/api/{self.api}{path}"

    def _call(self, method: str, path: str, **kw: Any) -> tuple[httpx.Response, Any]:
        self._ensure_ready()
        return self._send(method, self._api_url(path), **kw)

    def _detect(self) -> str:
        tried = []
        for api in ("v2", "v1"):
            resp, data = self._send("GET", f"{self.url}/api/{api}/version", authenticate=False,
                                    allow=(401, 403, 404, 405))
            if resp.status_code < 300 and isinstance(data, dict) and data.get("version"):
                self.server_version = str(data["version"])
                if api == "v2" and self.server_version.startswith(("1.", "2.")):
                    continue
                return api
            if resp.status_code in (401, 403):
                return api
            tried.append(f"/api/{api}/version -> HTTP {resp.status_code}")
        raise self._error(f"cannot detect the Airflow REST API at {self.url} ({'; '.join(tried)}); "
                          "set api: v1 or v2, or check the url", fatal=True)

    def _get_all(self, path: str, params: dict, key: str, *,
                 max_items: int | None = None, parallel: bool = False) -> list[dict]:
        """Page through a collection by offset. Never assumes `limit` was honoured."""
        out: list[dict] = []
        offset = 0
        limit = self.page_size if max_items is None else min(self.page_size, max_items)
        pages = 0
        while True:
            _, data = self._call("GET", path, params={**params, "limit": limit, "offset": offset})
            rows = self._rows(data, key, path)
            total = data.get("total_entries") if isinstance(data, dict) else None
            out.extend(rows)
            pages += 1
            offset += len(rows)
            if not rows or (max_items is not None and len(out) >= max_items):
                break
            if isinstance(total, int):
                if offset >= total:
                    break
            elif len(rows) < limit:
                break
            if parallel and pages == 1 and isinstance(total, int) and total > offset:
                rest = self._pages_parallel(path, params, key, limit, step=len(rows),
                                            start=offset, total=total)
                if rest is None:        # the server moved under us: read it again in order
                    return self._get_all(path, params, key, max_items=max_items)
                out.extend(rest)
                break
            if pages > 100_000:
                break
        return out if max_items is None else out[:max_items]

    def _pages_parallel(self, path: str, params: dict, key: str, limit: int, step: int,
                        start: int, total: int) -> list[dict] | None:
        """Pages after the first, concurrently; None if any page but the last came back short."""
        offsets = list(range(start, total, step))

        def one(off: int) -> tuple[int, list[dict]]:
            _, data = self._call("GET", path, params={**params, "limit": limit, "offset": off})
            return off, self._rows(data, key, path)

        results = dict(self._executor().map(one, offsets))
        if any(len(results[o]) < step for o in offsets[:-1]):
            return None
        return [row for off in offsets for row in results[off]]

    def _rows(self, data: Any, key: str, path: str) -> list[dict]:
        rows = data.get(key) if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise self._error(f"{self.name}: GET {self._api_url(path)} returned no {key!r} list")
        for i, r in enumerate(rows):
            if not isinstance(r, dict):     # dropping it would make a DAG look missing
                raise self._error(f"{self.name}: GET {self._api_url(path)} returned "
                                  f"{key}[{i}] as {type(r).__name__}, not an object")
            bad = _dag_field_error(r) if key == "dags" else None
            if bad:                         # "false" read as truthy would be a paused DAG
                raise self._error(f"{self.name}: GET {self._api_url(path)} returned "
                                  f"{key}[{i}].{bad}")
        return rows

    # ---------------------------------------------------------------- list_dags

    def _dag_params(self) -> dict:
        return {"exclude_stale": "false"} if self.api == "v2" else {"only_active": "false"}

    def list_dags(self) -> list[LiveDag]:
        self._ensure_ready()
        rows = self._get_all("/dags", {**self._dag_params(), "order_by": "dag_id"}, "dags",
                             parallel=self.parallel_pages)
        seen: dict[str, LiveDag] = {}
        for row in rows:
            dag = self._live_dag(row)
            if dag is not None and dag.dag_id not in seen:
                seen[dag.dag_id] = dag
        self._known = {d: v.is_paused for d, v in seen.items()}  # guides bulk patterns
        return list(seen.values())

    def _live_dag(self, d: dict) -> LiveDag | None:
        dag_id = d.get("dag_id")
        if not isinstance(dag_id, str):
            return None
        tags = tuple(t.get("name") if isinstance(t, dict) else str(t) for t in d.get("tags") or ())
        tags = tuple(t for t in tags if t)
        owners = d.get("owners") or ()
        if isinstance(owners, str):
            owners = [o.strip() for o in owners.split(",") if o.strip()]
        mar = d.get("max_active_runs")
        if self.api == "v2":
            is_stale = bool(d.get("is_stale", False))
            timetable = d.get("timetable_summary")
            next_run = d.get("next_dagrun_run_after")
        else:
            is_stale = not bool(d.get("is_active", True))
            timetable = d.get("timetable_summary") or _v1_schedule(d)
            next_run = d.get("next_dagrun_create_after") or d.get("next_dagrun")
        return LiveDag(
            dag_id=dag_id, is_paused=bool(d.get("is_paused")), tags=tags,
            owners=tuple(str(o) for o in owners), is_stale=is_stale,
            has_import_errors=bool(d.get("has_import_errors", False)),
            fileloc=d.get("fileloc"), last_parsed_time=d.get("last_parsed_time"),
            timetable_summary=timetable, next_dagrun_run_after=next_run,
            max_active_runs=mar if isinstance(mar, int) and not isinstance(mar, bool) else None,
        )

    # ---------------------------------------------------------------- set_paused

    def set_paused(self, dag_ids: Iterable[str], paused: bool,
                   progress: Progress | None = None) -> SetPausedResult:
        targets = list(dict.fromkeys(str(d) for d in dag_ids))
        result = SetPausedResult()
        if not targets:
            return result
        paused = bool(paused)
        caps = self.caps()
        tick = progress or (lambda n: None)
        state = _Run()
        singles = targets
        if self.bulk and len(targets) >= self.bulk_min:
            # terms must match no other DAG of the last listing, at any state; the GET of
            # each pattern (the server's own matching) decides before anything is sent
            target_set = set(targets)
            if self._known is None and not caps.pattern_or:
                self.list_dags()      # without `|`, exact ids are one request each: find prefixes
            avoid = None if self._known is None else [d for d in self._known
                                                      if d not in target_set]
            singles = self._via_bulk(caps, targets, paused, result, state, tick, avoid=avoid,
                                     before=None, min_bulk=self.bulk_min,
                                     kind="prefix" if caps.prefix_pattern else "ilike")
        self._singles(singles, paused, result, tick, state)
        return self._ordered(result, targets)

    def pause_except(self, live: list[LiveDag], targets: Iterable[str],
                     keep: Callable[[LiveDag], bool],
                     progress: Progress | None = None) -> SetPausedResult:
        """The emergency path (Backend capability BulkPauser): pause exactly `targets`, never a
        DAG `keep` is true for. Terms avoid only the kept DAGs (the others are paused already
        and the PATCH's `paused=false` filter, or AF2's same-value write, leaves them as they
        are), so an emergency is a few requests; `live` (just listed) is the state before,
        and the result is verified by listing like set_paused."""
        targets = list(dict.fromkeys(str(d) for d in targets))
        result = SetPausedResult()
        if not targets:
            return result
        caps = self.caps()
        tick = progress or (lambda n: None)
        state = _Run()
        singles = targets
        if self.bulk and len(targets) > 1:
            before = {d.dag_id: d.is_paused for d in live}
            avoid = [d.dag_id for d in live if keep(d)]
            # ILIKE, not the prefix range: for ASCII ids its emulation is exact on every
            # database, so the listing can stand in for a GET of each pattern
            singles = self._via_bulk(caps, targets, True, result, state, tick, avoid=avoid,
                                     before=before, min_bulk=2, kind="ilike")
        self._singles(singles, True, result, tick, state)
        return self._ordered(result, targets)

    def _via_bulk(self, caps: Capabilities, targets: list[str], paused: bool,
                  result: SetPausedResult, state: "_Run", tick: Progress, **kw: Any
                  ) -> list[str]:
        """Run the bulk path (bulk.py) on the ids a pattern can hold; returns what is left
        for single PATCHes (every target not confirmed at the requested state)."""
        ok = [t for t in targets if _DAG_ID_RE.match(t)]
        try:
            _bulk.run(self, caps, ok, paused, result, **kw)
        except _Fatal as e:
            state.fatal = str(e)
        except BackendError as e:
            log.info("%s: bulk path stopped: %s", self.name, e)
        done = set(result.changed) & set(targets)
        if done:
            tick(len(done))
        return [t for t in targets if t not in done]

    @staticmethod
    def _ordered(result: SetPausedResult, targets: list[str]) -> SetPausedResult:
        order = {d: i for i, d in enumerate(targets)}        # keep the caller's order
        result.changed = sorted(set(result.changed) & set(targets), key=order.__getitem__)
        return result

    def _singles(self, ids: list[str], paused: bool, result: SetPausedResult,
                 tick: Progress, state: "_Run") -> None:
        if not ids:
            return
        lock = threading.Lock()

        def one(dag_id: str) -> None:
            if state.fatal:
                err = state.fatal
            else:
                try:
                    err = self._patch_one(dag_id, paused)
                except _Fatal as e:
                    with lock:
                        state.fatal = state.fatal or str(e)
                    err = str(e)
                except BackendError as e:
                    err = str(e)
                except Exception as e:  # never let one DAG's surprise kill the batch
                    err = self._scrub(_one_line(f"{self.name}: PATCH {dag_id}: "
                                                f"{type(e).__name__}: {e}"))
            with lock:
                if err is None:
                    result.changed.append(dag_id)
                else:
                    result.errors[dag_id] = err
            tick(1)

        if len(ids) == 1 or self.concurrency == 1:
            for d in ids:
                one(d)
        else:
            list(self._executor().map(one, ids))

    def _patch_one(self, dag_id: str, paused: bool) -> str | None:
        path = f"/dags/{quote(dag_id, safe='')}"
        resp, data = self._call("PATCH", path, params={"update_mask": "is_paused"},
                                json_body={"is_paused": paused}, allow=(404,))
        if resp.status_code == 404:
            return f"DAG {dag_id} not found in {self.name}"
        if isinstance(data, dict) and "is_paused" in data and bool(data["is_paused"]) != paused:
            return f"{self.name}: PATCH {dag_id} answered is_paused={data['is_paused']}"
        return None

    # ---------------------------------------------------------------- audit events

    def audit_events(self, dag_ids: Iterable[str] | None = None,
                     since: datetime | None = None) -> list[AuditEvent]:
        """Pause events (events.py), newest first. With dag_ids: each DAG's own events plus
        every bulk-pattern and CLI-regex event that matches it, attributed to that DAG."""
        caps = self.caps()
        ids = None if dag_ids is None else set(dag_ids)
        if ids is not None and not ids:
            return []
        names = event_names(caps)
        base: dict[str, Any] = {"order_by": "-when"}
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
            base["after"] = since.astimezone(timezone.utc).isoformat()

        def inc(events: Iterable[str]) -> dict:
            events = list(events)
            return {"included_events": ",".join(events) if caps.included_events_csv
                    else events}

        raw: list[dict] = []
        if ids is not None and len(ids) == 1:
            (only,) = ids
            raw += self._get_all("/eventLogs", {**base, **inc(names), "dag_id": only},
                                 "event_logs", max_items=self.audit_limit)
            # rows whose dag_id column does not name the DAG: bulk patterns, CLI regexes
            raw += self._get_all("/eventLogs", {**base, **inc(bulk_event_names(caps) + (
                "cli_dag_pause", "cli_dag_unpause"))}, "event_logs", max_items=self.audit_limit)
        else:
            raw += self._get_all("/eventLogs", {**base, **inc(names)}, "event_logs",
                                 max_items=self.audit_limit)
        out: list[AuditEvent] = []
        seen: set[Any] = set()
        for row in raw:
            key = row.get("event_log_id", id(row))
            if key in seen:
                continue
            seen.add(key)
            ev = normalise(row.get("event"), row.get("dag_id"), row.get("owner"),
                           _parse_time(row.get("when")), row.get("extra"), caps)
            if ev is not None and (since is None or ev.when >= since):
                out.append(ev)
        return attribute(out, ids, caps)[: self.audit_limit]

    # ---------------------------------------------------------------- dag runs

    def dag_runs(self, dag_id: str, limit: int = 25) -> list[DagRun]:
        self._ensure_ready()
        order = "-run_after" if self.api == "v2" else "-execution_date"
        rows = self._get_all(f"/dags/{quote(dag_id, safe='')}/dagRuns", {"order_by": order},
                             "dag_runs", max_items=max(1, int(limit)))
        if not rows and self.api == "v1":
            # AF2 answers an empty list, not 404, for an unknown DAG
            self._call("GET", f"/dags/{quote(dag_id, safe='')}")
        out = []
        for r in rows:
            run_after = (_parse_time(r.get("run_after")) if self.api == "v2" else
                         _parse_time(r.get("data_interval_end"))
                         or _parse_time(r.get("execution_date") or r.get("logical_date")))
            out.append(DagRun(dag_id=r.get("dag_id") or dag_id,
                              run_id=str(r.get("dag_run_id") or r.get("run_id") or ""),
                              state=str(r.get("state") or ""), run_after=run_after,
                              start_date=_parse_time(r.get("start_date")),
                              end_date=_parse_time(r.get("end_date"))))
        return out

    # ---------------------------------------------------------------- variables

    def _var_path(self, key: str) -> str:
        return f"/variables/{quote(key, safe='')}"

    def get_variable(self, key: str) -> str | None:
        resp, data = self._call("GET", self._var_path(key), allow=(404,))
        if resp.status_code == 404:
            return None
        value = data.get("value") if isinstance(data, dict) else None
        return None if value is None else str(value)

    def set_variable(self, key: str, value: str) -> None:
        body = {"key": key, "value": value}
        if self.api == "v1":          # AF2: POST /variables is an upsert
            self._call("POST", "/variables", json_body=body)
            return
        resp, _ = self._call("PATCH", self._var_path(key), json_body=body, allow=(404,))
        if resp.status_code == 404:
            resp, _ = self._call("POST", "/variables", json_body=body, allow=(409,))
            if resp.status_code == 409:     # created meanwhile: overwrite
                self._call("PATCH", self._var_path(key), json_body=body)

    def create_variable(self, key: str, value: str) -> bool:
        """Create only if absent; True if this call's value is the one stored.

        Best effort, NOT atomic on AF2/AF3 (see the module notes): pass a value unique to the
        caller. A 201 is confirmed by re-reading after `create_settle` seconds (a concurrent
        creator that upserted after us wins, and this returns False); a 409 is re-read too,
        because a retried POST whose first attempt did land answers 409.
        """
        created = self.create_variable_unconfirmed(key, value)
        if created and self.create_settle > 0:
            self.sleep(self.create_settle)
        return self.get_variable(key) == value

    def create_variable_unconfirmed(self, key: str, value: str) -> bool:
        """The create of create_variable without its settle and re-read (Backend capability
        UnconfirmedCreate): True if the server answered "created" (v2 201; v1: absent, then
        POSTed). A concurrent creator may still overwrite it: the caller re-reads later."""
        self._ensure_ready()
        body = {"key": key, "value": value}
        if self.api == "v1":          # AF2: POST is a plain upsert, so look first
            if self.get_variable(key) is not None:
                return False
            self._call("POST", "/variables", json_body=body)
            return True
        resp, _ = self._call("POST", "/variables", json_body=body, allow=(409,))
        return resp.status_code != 409

    def delete_variable(self, key: str) -> None:
        self._call("DELETE", self._var_path(key), allow=(404,), expect_json=False)

    # ---------------------------------------------------------------- assets (cascade.py)

    def asset_edges(self) -> list:
        """(producer, consumer, asset) for every asset: AF3 `GET /assets` (`producing_tasks`
        -> `scheduled_dags` + `consuming_tasks`), AF2 `GET /datasets` (`producing_tasks` ->
        `consuming_dags`)."""
        from reconciler.live.base import AssetEdge
        self._ensure_ready()
        if self.api == "v2":
            rows = self._get_all("/assets", {"order_by": "id"}, "assets")
            consumers_keys, name_key = ("scheduled_dags", "consuming_tasks"), "name"
        else:
            rows = self._get_all("/datasets", {"order_by": "id"}, "datasets")
            consumers_keys, name_key = ("consuming_dags",), "uri"

        def ids(items: Any) -> list[str]:
            return sorted({x["dag_id"] for x in items or () if isinstance(x, dict)
                           and isinstance(x.get("dag_id"), str)})

        out = []
        for row in rows:
            name = str(row.get(name_key) or row.get("uri") or "")
            consumers = sorted({c for k in consumers_keys for c in ids(row.get(k))})
            for p in ids(row.get("producing_tasks")):
                out.extend(AssetEdge(p, c, name) for c in consumers if c != p)
        return out


class _Run:
    """Shared state of one set_paused call."""

    __slots__ = ("fatal",)

    def __init__(self) -> None:
        self.fatal: str | None = None


def _dag_id_from_path(path: str) -> str | None:
    from urllib.parse import unquote
    m = re.search(r"/dags/([^/]+)(?:/|$)", path)
    return unquote(m.group(1)) if m else None


def _v1_schedule(d: dict) -> str | None:
    """AF2 schedule_interval -> the text AF3 puts in timetable_summary."""
    si = d.get("schedule_interval")
    if si is None:
        return None
    if isinstance(si, dict):
        kind = si.get("__type")
        if kind == "CronExpression":
            return si.get("value")
        if kind == "TimeDelta":
            return str(timedelta(days=si.get("days", 0), seconds=si.get("seconds", 0),
                                 microseconds=si.get("microseconds", 0)))
        return d.get("timetable_description") or str(si.get("value") or kind)
    return str(si)
