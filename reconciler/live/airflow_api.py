"""The `airflow-api` backend: Airflow's REST API, v2 (Airflow 3) or v1 (Airflow 2), over httpx.

Config: reconciler/live/rest/config.py. Its parts, in reconciler/live/rest/: transport (one
client: whole-request deadline, byte cap, no redirects, retries), auth (httpx.Auth objects:
basic, bearer, JWT re-login, AF2 session), dialect (REST v1 vs v2), reads, writes; the bulk
path is bulk.py, event normalisation (shared with dagmodel) events.py.

Design notes (measured against real Airflow 2.9 through 3.3; tests in
tests/live/test_airflow_api_faults.py, tests/live/test_airflow_api_live.py, tests/test_compat.py):

* Detection (`api: auto`): GET {url}/api/v2/version (unauthenticated on AF3), then
  /api/v1/version (unauthenticated on AF2). 401/403 on a version path also proves it exists.
* Permission errors (403) are per call, not fatal: Airflow can grant access per DAG.
  Authentication, TLS and unreachable-server errors are fatal: set_paused stops sending and
  marks every remaining DAG with that one-line error.
* Capabilities by version: the first request reads /version once and `capabilities.py`
  derives what this server does correctly: bulk PATCH scope (3.2.2+ every match; 3.0-3.2.1
  and AF2 one page), the `paused` filter on it, `|` in dag_id_pattern (3.2.1+),
  dag_id_prefix_pattern (3.2.2+), trustworthy event values.
* set_paused never changes a DAG outside the requested set. Its fast path (bulk.py) sends a
  bulk PATCH /dags?<pattern> only after a GET with the same pattern (stale DAGs included)
  showed that no DAG outside the set that the PATCH would flip matches; terms are shared
  prefixes where the last list_dags() shows they match nothing else, else exact ids. Every
  bulk change is then verified by listing the pattern again, never by total_entries; what is
  still at the old state gets a single PATCH, a DAG outside the set that a response proves
  was flipped is put back, and one that appeared meanwhile is named in `warnings`.
  `pause_except` (the emergency path) does the same from a listing just taken.
* `changed` in SetPausedResult lists every requested DAG that is now confirmed at the requested
  state (including one that already was); `errors` holds the others, one line each, so
  changed + errors == the requested set. Pre-flight failures (detection, login) raise
  BackendError.
* create_variable is NOT atomic on either server (read in the source, and measured): AF3
  3.3.2's POST /variables checks for the key and then upserts (409 only if the key already
  existed when checked), and AF2's POST /variables is a plain upsert. This backend narrows
  the race: v1 GETs first; both re-read the value after `create_settle` seconds and return
  True only if it is this caller's. Use a value unique to the caller.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

import httpx

from reconciler.core.errors import BackendError
from reconciler.live.api_extras import ApiExtras
from reconciler.live.capabilities import Capabilities, capabilities_for
from reconciler.live.events import command_line, ilike_matches
from reconciler.live.rest import config as _config
from reconciler.live.rest.auth import Credentials, RestAuth, auth_for
from reconciler.live.rest.dialect import Dialect, dialect_for
from reconciler.live.rest.errors import Fatal, one_line
from reconciler.live.rest.impact_reads import ImpactApiReads
from reconciler.live.rest.reads import Reads
from reconciler.live.rest.transport import Transport
from reconciler.live.rest.writes import Writes

log = logging.getLogger(__name__)

__all__ = ["AirflowApiBackend", "ilike_matches", "command_line"]


def _transport_attr(name: str) -> property:
    """A retry setting kept by the Transport, settable on the backend (tests pin them)."""
    return property(lambda self: getattr(self.transport, name),
                    lambda self, value: setattr(self.transport, name, value))


class AirflowApiBackend(Reads, Writes, ImpactApiReads):
    """Airflow over its REST API. Thread-safe; one httpx.Client, one small thread pool."""

    type = "airflow-api"
    sleep = _transport_attr("sleep")
    random = _transport_attr("random")
    backoff_base = _transport_attr("backoff_base")
    backoff_max = _transport_attr("backoff_max")

    def __init__(self, name: str, config: Mapping[str, Any], *,
                 env: Mapping[str, str] = os.environ,
                 transport: httpx.BaseTransport | None = None):
        self.name = name
        cfg = _config.load(name, config)
        self.url = cfg["url"]
        self.api_mode: str = cfg["api"]
        self.api: str | None = None if self.api_mode == "auto" else self.api_mode
        self.server_version: str | None = None
        self.auth_mode: str = cfg["auth"]
        self.timeout = float(cfg["timeout"])
        self.concurrency = int(cfg["concurrency"])
        self.page_size = int(cfg["page_size"])
        self.bulk = bool(cfg["bulk"])
        self.bulk_min = max(1, int(cfg["bulk_min"]))
        self.max_pattern_length = int(cfg["max_pattern_length"])
        self.parallel_pages = bool(cfg["parallel_pages"])
        self.audit_limit = int(cfg["audit_limit"])
        self.create_settle = float(cfg["create_settle"])
        self._creds = Credentials(name, self.auth_mode, env, str(cfg["username_env"]),
                                  str(cfg["password_env"]), str(cfg["token_env"]))
        self.transport = Transport(
            name, self.url, timeout=self.timeout, retries=int(cfg["retries"]),
            concurrency=self.concurrency, verify=_config.tls_verify(name, cfg),
            max_retry_after=float(cfg["max_retry_after"]), scrub=self._scrub,
            transport=transport)
        #: set once the API is known (_ensure_ready): how to authenticate, what differs
        self.auth: RestAuth | None = None
        self.dialect: Dialect | None = None
        self._init_lock = threading.Lock()
        self._ready = False
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._known: dict[str, bool] | None = None   # the last list_dags(): id -> is_paused
        self._scope: list[str] | None = None   # its terms, when it was list_dags_matching
        #: what this server's version does correctly; read from /version once (capabilities.py)
        self.capabilities: Capabilities | None = None
        self.bulk_requests = 0         # bulk PATCH /dags requests sent (for tests and metrics)

    # ---------------------------------------------------------------- secrets and errors

    def _secrets(self) -> list[str]:
        """The credentials in use, each registered with the process-wide scrubber (every
        encoding of it: reconciler/core/secrets.py), which the CLI's output guard also applies."""
        from reconciler.core.secrets import register, register_pair
        c = self._creds
        out = []
        extra = self.auth.secrets() if self.auth is not None else []
        for s in (c.password, c.static_token, *extra):
            if s is not None and len(s.value) >= 3:
                out.append(s.value)
                if s is not c.password:
                    register(s.value)
                elif s.value == c.username:
                    # a password equal to the user name hides nothing; its Basic pair does
                    register_pair(c.username, s.value)
                else:
                    register(s.value, c.username)
        return out

    def _scrub(self, text: str) -> str:
        from reconciler.core.secrets import scrub
        self._secrets()
        return scrub(text) if text else text

    def _error(self, message: str, fatal: bool = False) -> BackendError:
        return (Fatal if fatal else BackendError)(self._scrub(one_line(message, 500)))

    def _auth_failed(self) -> BackendError:
        return self._error(f"authentication failed for {self.name} ({self._creds.hint()})",
                           fatal=True)

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
        self.transport.close()

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
            self.dialect = dialect_for(self.api)
            self.auth = auth_for(self.transport, self._creds, self.dialect.password_flavour,
                                 ambiguous_403=self.dialect.ambiguous_403,
                                 probe_url=self._api_url("/dags"), fail=self._auth_failed)
            self.auth.login()
            if self.server_version is None:     # /version needed credentials here
                self._read_version(authenticate=True)
            self.capabilities = capabilities_for(self.server_version, self.api)
            self.dialect.caps = self.capabilities
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
            resp, data = self._send("GET", self._api_url("/version"),
                                    authenticate=authenticate, allow=(401, 403, 404, 405))
        except Fatal:
            raise
        except BackendError as e:
            log.debug("%s: /version not read: %s", self.name, e)
            return
        if resp.status_code < 300 and isinstance(data, dict) and data.get("version"):
            self.server_version = str(data["version"])

    def _detect(self) -> str:
        tried = []
        for api in ("v2", "v1"):
            resp, data = self._send("GET", f"{self.url}/api/{api}/version", authenticate=False,
                                    allow=(401, 403, 404, 405))
            if resp.status_code < 300 and isinstance(data, dict) and data.get("version"):
                self.server_version = str(data["version"])
                if api == "v2" and self.server_version.startswith(("1.", "2.")):
                    continue          # an AF2 behind a v2-looking path: ask v1
                return api
            if resp.status_code in (401, 403):
                return api
            tried.append(f"/api/{api}/version -> HTTP {resp.status_code}")
        raise self._error(f"cannot detect the Airflow REST API at {self.url} ({'; '.join(tried)}); "
                          "set api: v1 or v2, or check the url", fatal=True)

    def caps(self) -> Capabilities:
        """This server's Capabilities (reads /version on first use)."""
        self._ensure_ready()
        assert self.capabilities is not None
        return self.capabilities

    # ---------------------------------------------------------------- requests

    def _send(self, method: str, url: str, *, authenticate: bool = True,
              **kw: Any) -> tuple[httpx.Response, Any]:
        if self._closed:
            raise BackendError(f"{self.name}: backend is closed")
        return self.transport.send(method, url, auth=self.auth if authenticate else None, **kw)

    def _api_url(self, path: str) -> str:
        return f"{self.url}/api/{self.api}{path}"

    def _call(self, method: str, path: str, **kw: Any) -> tuple[httpx.Response, Any]:
        self._ensure_ready()
        return self._send(method, self._api_url(path), **kw)

    # ---------------------------------------------------------------- diagnostics (doctor)

    def dag_details(self, dag_id: str) -> dict | None:
        return ApiExtras(self).dag_details(dag_id)

    def import_errors(self, dag_id: str) -> list[dict]:
        return ApiExtras(self).import_errors(dag_id)

    def task_instances(self, dag_id: str, states) -> list[dict]:
        return ApiExtras(self).task_instances(dag_id, states)

    def runs_in_flight(self, dag_ids) -> list:
        """RunsInFlight (a drain's poll): running/queued runs of many DAGs, batched."""
        from reconciler.live.rest.inflight import runs_in_flight
        return runs_in_flight(self, dag_ids)
