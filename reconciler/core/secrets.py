"""Secrets in every encoding a server or an exception could echo them in, and one scrubber.

A backend registers each credential it reads from the environment (the variables pausectl.yaml
names: password_env, token_env, ...) and the tokens it is given; from then on `scrub` replaces
every form of them with `***`. It runs at the edges: on every error and JSON body from the
Airflow API (live/airflow_api.py, live/rest/), on every data value the sinks render (sanitize.py), and
on every line the CLI writes to stdout/stderr (sanitize.GuardedStream). Forms covered:

- the literal, JSON-escaped (ASCII and not), Python repr, HTML-escaped;
- URL-encoded (`quote` with and without `/` safe, `quote_plus`; upper and lower case hex);
- base64 (standard and URL-safe, padded or not) of the secret alone and of `user:password`
  (an HTTP Basic header), and the part of its base64 that does not depend on alignment, so it
  is found inside a longer base64 text too;
- a JWT's signature segment on its own.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 3          # shorter values would mask ordinary text; they are not secrets anyway
_CORE_MIN = 8           # base64 cores shorter than this collide with ordinary base64


def _b64_forms(raw: bytes) -> set[str]:
    out = set()
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        full = enc(raw).decode("ascii")
        out |= {full, full.rstrip("=")}
        if len(raw) >= 6:
            # inside longer base64: for each of the 3 alignments, the characters whose six bits
            # all come from `raw` (the same whatever precedes or follows it)
            for pad in range(3):
                text = enc(b"\0" * pad + raw).decode("ascii")
                first = -(-pad * 8 // 6)
                last = (pad + len(raw)) * 8 // 6
                core = text[first:last]
                if len(core) >= _CORE_MIN:
                    out.add(core)
    return out


def _lower_hex(s: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), s)


def forms(secret: str) -> set[str]:
    """Every text form of one secret (see the module doc)."""
    if not isinstance(secret, str) or len(secret) < MIN_LENGTH:
        return set()
    out = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
           repr(secret)[1:-1], html.escape(secret), html.escape(secret, quote=False)}
    for q in (quote(secret, safe=""), quote(secret), quote_plus(secret),
              quote_plus(secret, safe="")):
        out |= {q, _lower_hex(q)}
    out |= _b64_forms(secret.encode("utf-8"))
    parts = secret.split(".")
    if len(parts) == 3 and all(parts) and len(parts[2]) >= 16:     # a JWT: its signature
        out.add(parts[2])
    return {f for f in out if len(f) >= MIN_LENGTH}


def basic_forms(user: str, password: str) -> set[str]:
    """The forms of `user:password` as HTTP Basic sends it (base64), and its literal."""
    if not password or len(password) < MIN_LENGTH:
        return set()
    pair = f"{user}:{password}"
    return {pair, *_b64_forms(pair.encode("utf-8"))}


class Scrubber:
    """Replaces every registered form with `***`, longest forms first (thread-safe)."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._seen: set[tuple] = set()
        self._re: re.Pattern | None = None
        self._needles: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secret: str | None, user: str | None = None, pair_only: bool = False) -> None:
        """Register a secret (and, with `user`, its Basic-auth pair); cheap when repeated."""
        if not secret:
            return
        key = (secret, user, pair_only)
        if key in self._seen:
            return
        new = set() if pair_only else forms(secret)
        if user is not None:
            new |= basic_forms(user, secret)
        with self._lock:
            self._seen.add(key)
            if new - self._forms:
                self._forms |= new
                ordered = sorted(self._forms, key=len, reverse=True)
                self._needles = tuple(ordered)       # replaced whole: safe to iterate
                self._re = re.compile("|".join(re.escape(f) for f in ordered))

    def scrub(self, text: str) -> str:
        pattern = self._re
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def found(self, text: str) -> bool:
        pattern = self._re
        return bool(pattern is not None and text and pattern.search(text))

    def scrub_tree(self, data):
        """A decoded JSON value with every string (keys too) scrubbed; the same object when
        nothing in it matched (the common case costs one walk)."""
        needles = self._needles
        if not needles:
            return data
        strings: list[str] = []
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                strings.append(item)
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        # every string joined by NUL, each form looked for with `in` (C substring search),
        # instead of the regex once per string (a listing page holds ~3,000 strings: 4-6 ms
        # per page before, ~2 after): a form inside one string is still found; one across a
        # NUL (only a form holding a NUL) merely costs the exact per-string pass below
        joined = "\0".join(strings)
        hit = any(f in joined for f in needles)
        return self._rebuild(data) if hit else data

    def _rebuild(self, data):
        # iterative: the caller bounds the depth, but no recursion is needed either way
        if isinstance(data, str):
            return self.scrub(data)
        root: list = [None]
        stack = [(data, root, 0)]
        while stack:
            item, parent, key = stack.pop()
            if isinstance(item, dict):
                new: dict | list = {}
                parent[key] = new
                for k, v in item.items():
                    k2 = self.scrub(k) if isinstance(k, str) else k
                    new[k2] = None
                    stack.append((v, new, k2))
            elif isinstance(item, list):
                new = [None] * len(item)
                parent[key] = new
                for i, v in enumerate(item):
                    stack.append((v, new, i))
            else:
                parent[key] = self.scrub(item) if isinstance(item, str) else item
        return root[0]


REGISTRY = Scrubber()


def register(secret: str | None, user: str | None = None) -> None:
    """Make `secret` (and `user:secret` when user is given) unprintable by this process."""
    REGISTRY.add(secret, user)


def register_pair(user: str, password: str) -> None:
    """Only `user:password` as HTTP Basic carries it (for a password that is also the user
    name: masking it would mask the user name everywhere, and it hides nothing)."""
    REGISTRY.add(password, user, pair_only=True)


def scrub(text: str) -> str:
    return REGISTRY.scrub(text)


def scrub_tree(data):
    return REGISTRY.scrub_tree(data)
