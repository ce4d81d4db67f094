"""Bounded, scrubbed server bodies and one-line errors for the airflow-api backend."""

from __future__ import annotations

import email.utils
import json
import re
import ssl
from datetime import datetime, timezone
from typing import Any

import httpx

from reconciler.core.errors import BackendError

# Bounds on what a server may send (a hostile or broken one must not exhaust the runner)
MAX_RESPONSE_BYTES = 32 * 1024 * 1024     # one response body, after decompression
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Secret:
    """A credential that never shows itself in repr/str/logs."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class Fatal(BackendError):
    """An error every further request would hit too (auth, TLS, server unreachable)."""


class Retryable(Exception):
    def __init__(self, kind: str, detail: str, response: httpx.Response | None = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.response = response


class BadBody(ValueError):
    """A response body no retry can fix (too big, too deep, NaN): one line, not retried."""


class _JsonError(BackendError):
    pass


def one_line(text: Any, limit: int = 300) -> str:
    from reconciler.core.sanitize import one_line as _one
    return _one(text, limit)


def loads(content: bytes | str, scrub: bool = True) -> Any:
    """JSON from a server through the shared bounded parser (safejson: no NaN/Infinity, no
    huge numbers, bounded depth), then every secret form scrubbed from its strings before
    anyone reads them. Invalid JSON (perhaps truncated) is a ValueError the caller retries;
    what no retry can fix is a BadBody."""
    from reconciler.core.safejson import loads as safe_loads
    try:
        data = safe_loads(content, None, error=_JsonError, what="JSON")
    except _JsonError as e:
        msg = e.message.removeprefix("JSON: ")
        if msg.startswith("invalid JSON: "):
            raise ValueError(msg.removeprefix("invalid JSON: ")) from None
        raise BadBody(msg) from None
    from reconciler.core.secrets import scrub_tree
    return scrub_tree(data) if scrub else data


class Body(httpx.Response):
    """A response whose body was read under the byte cap; .json() is the bounded parser."""

    #: False only for /auth/token, whose access_token IS the secret the caller asked for
    scrub = True

    def json(self, **kwargs: Any) -> Any:
        return loads(self.content, scrub=self.scrub)


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def retry_after(resp: httpx.Response | None) -> float | None:
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


def is_tls_error(exc: BaseException) -> bool:
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


def tls_reason(exc: BaseException) -> str:
    e: BaseException | None = exc
    while e is not None:
        if isinstance(e, ssl.SSLCertVerificationError) and getattr(e, "verify_message", None):
            return str(e.verify_message)
        e = e.__cause__ or e.__context__
    return one_line(exc, 200)


def permission_for(method: str, path: str) -> str:
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


def dag_id_from_path(path: str) -> str | None:
    from urllib.parse import unquote
    m = re.search(r"/dags/([^/]+)(?:/|$)", path)
    return unquote(m.group(1)) if m else None


def detail_text(resp: httpx.Response) -> str:
    """A server's error detail (FastAPI/connexion shapes) as one line of <= 200 characters."""
    try:
        data = resp.json()
    except ValueError:
        text = resp.text.strip()
        if "<html" in text[:500].lower() or text.startswith("<"):
            return ""
        return one_line(text, 200)
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
            return one_line("; ".join(msgs), 200)
        if d:
            return one_line(d, 200)
        if data.get("title"):
            return one_line(data["title"], 200)
    return one_line(json.dumps(data), 200) if data else ""
