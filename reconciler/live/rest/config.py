"""The airflow-api backend's config (the environment's `backend:` mapping in pausectl.yaml)::

    type: airflow-api
    url: https://airflow.example.com      # the api-server (AF3) / webserver (AF2) base URL
    api: auto                             # auto | v1 | v2
    auth: password-token                  # none | basic | bearer | password-token
    username_env: AIRFLOW_USER            # env var names; the values never leave the backend
    password_env: AIRFLOW_PASSWORD
    token_env: AIRFLOW_TOKEN              # auth: bearer
    ca_bundle: /path/ca.pem               # else the system CAs; TLS verification is always on ...
    insecure: false                       # ... unless this is explicitly true
    timeout: 10                           # seconds, per request (in total, body included)
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
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any, Mapping
from urllib.parse import urlsplit

from reconciler.core.errors import BackendError
from reconciler.live.rest.errors import one_line

log = logging.getLogger(__name__)

AUTH_MODES = ("none", "basic", "bearer", "password-token")
API_MODES = ("auto", "v1", "v2")

DEFAULTS: dict[str, Any] = {
    "api": "auto", "auth": "password-token", "username_env": "AIRFLOW_USER",
    "password_env": "AIRFLOW_PASSWORD", "token_env": "AIRFLOW_TOKEN", "ca_bundle": None,
    # page_size is what each page asks for; the server answers at most its [api]
    # maximum_page_limit rows (100 unless raised, 2.9 through 3.3) and paging steps by the
    # rows it got, so asking for more costs nothing and a raised limit is used unconfigured
    "insecure": False, "timeout": 10, "retries": 4, "concurrency": 8, "page_size": 1000,
    "bulk": True, "bulk_min": 16, "max_pattern_length": 6000, "parallel_pages": False,
    "audit_limit": 1000, "max_retry_after": 60, "create_settle": 0.5,
}


def load(name: str, config: Mapping[str, Any] | None) -> dict:
    """DEFAULTS overlaid with `config`, validated; BackendError naming the bad key."""
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in dict(config or {}).items() if v is not None})
    url = cfg.get("url")
    if not url or not isinstance(url, str):
        raise BackendError(f"{name}: backend url is required for type airflow-api")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(f"{name}: backend url must be http(s)://host[:port][/path], "
                           f"got scheme {parts.scheme or '(none)'!r}")
    if parts.username is not None or parts.password is not None:
        raise BackendError(f"{name}: backend url must not contain credentials; "
                           "use username_env/password_env or token_env")
    if parts.query or parts.fragment:
        raise BackendError(f"{name}: backend url must not have a query or fragment")
    if cfg["api"] not in API_MODES:
        raise BackendError(f"{name}: backend api must be one of {', '.join(API_MODES)}, "
                           f"got {cfg['api']!r}")
    if cfg["auth"] not in AUTH_MODES:
        raise BackendError(f"{name}: backend auth must be one of {', '.join(AUTH_MODES)}, "
                           f"got {cfg['auth']!r}")
    if not isinstance(cfg["insecure"], bool):
        raise BackendError(f"{name}: backend insecure must be true or false")
    for key, lo in (("timeout", 0.001), ("retries", 0), ("concurrency", 1), ("page_size", 1),
                    ("bulk_min", 1), ("max_pattern_length", 100), ("audit_limit", 1),
                    ("max_retry_after", 0), ("create_settle", 0)):
        val = cfg[key]
        if isinstance(val, bool) or not isinstance(val, (int, float)) or val < lo:
            raise BackendError(f"{name}: backend {key} must be a number >= {lo}, got {val!r}")
    for key in ("username_env", "password_env", "token_env"):
        if not isinstance(cfg[key], str) or not cfg[key]:
            raise BackendError(f"{name}: backend {key} must name an environment variable")
    cfg["url"] = url.strip().rstrip("/")
    return cfg


def tls_verify(name: str, cfg: dict) -> bool | ssl.SSLContext:
    """httpx's `verify`: on by default, a CA file's context, or off only if insecure: true."""
    if cfg["insecure"] is True:
        log.warning("%s: TLS certificate verification is disabled (insecure: true)", name)
        return False
    if not cfg["ca_bundle"]:
        return True
    path = os.path.expanduser(str(cfg["ca_bundle"]))
    if not os.path.isfile(path):
        raise BackendError(f"{name}: ca_bundle {path} is not a readable file")
    try:
        return ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise BackendError(f"{name}: ca_bundle {path} is not a usable PEM CA file: "
                           f"{one_line(e, 150)}") from None
