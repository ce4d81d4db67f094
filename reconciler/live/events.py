"""One normalisation of Airflow's event-log rows into AuditEvent, for REST v2, REST v1 and
the dagmodel backend (they all read the same `log` table rows).

Who writes which row (read in each version's source, see docs/airflow-versions.md):

* REST `PATCH /dags/{id}` (UI on Airflow 3, REST clients): `patch_dag`, AF2 `api.patch_dag` /
  `ui.patch_dag`; owner = the user; extra JSON with `is_paused` (on 3.0.x always false:
  apache/airflow #55074, so not trusted there). -> via "api".
* REST bulk `PATCH /dags?dag_id_pattern=...`: `patch_dags` (AF2 `api.`/`ui.` prefixed), dag_id
  empty, extra JSON with the pattern (and `dag_id_prefix_pattern` on 3.2.2+). -> via "bulk".
* AF2's UI toggle (`POST /paused`): `paused`, owner = the user, extra JSON `{"is_paused": ..}`.
  -> via "api".
* The scheduler's auto-pause after `max_consecutive_failed_dag_runs` (2.9+): `paused`, owner
  "scheduler", extra the Python repr `[('dag_id', 'X'), ('is_paused', True)]`, not JSON.
  -> via "airflow", user "scheduler", is_paused True, detail "auto-paused by Airflow".
* CLI `airflow dags pause|unpause`: `cli_dag_pause` / `cli_dag_unpause`, owner = OS user, extra
  JSON with `full_command` (the argv repr). With `--treat-dag-id-as-regex` the dag_id column
  holds the regex (matched with the database's regexp, re.search semantics). -> via "cli".
* pausectl's dagmodel backend: `pausectl.pause` / `pausectl.unpause` with a JSON `source`.
* No user: AF3 all-admins mode logs "Anonymous"; a request without a user logs "anonymous".

Every row is written before the endpoint runs, so 404s and no-op requests are logged too.
"""

from __future__ import annotations

import ast
import bisect
import functools
import json
import os
import re
import shlex
from datetime import datetime
from typing import Any, Iterable

from reconciler.live.base import AuditEvent
from reconciler.live.capabilities import Capabilities
# ilike_matches and prefix_matches are also read as events.* (tests)
from reconciler.live.patterns import (ilike_matches, ilike_rx, prefix_bounds,  # noqa: F401
                                      prefix_matches)

PAUSECTL_EVENTS = ("pausectl.pause", "pausectl.unpause")
V2_EVENTS = ("patch_dag", "patch_dags", "paused", "cli_dag_pause", "cli_dag_unpause",
             *PAUSECTL_EVENTS)
V1_EVENTS = ("api.patch_dag", "ui.patch_dag", "api.patch_dags", "ui.patch_dags", "paused",
             "cli_dag_pause", "cli_dag_unpause", *PAUSECTL_EVENTS)
ALL_EVENTS = tuple(dict.fromkeys(V2_EVENTS + V1_EVENTS))
AUTO_PAUSE_DETAIL = "auto-paused by Airflow"
_REGEX_FLAGS = ("--treat-dag-id-as-regex", "--treat-dag-as-regex")
_MAX_REPR = 20_000


def event_names(caps: Capabilities) -> tuple[str, ...]:
    return V1_EVENTS if caps.event_prefixed else V2_EVENTS


def bulk_event_names(caps: Capabilities) -> tuple[str, ...]:
    return ("api.patch_dags", "ui.patch_dags") if caps.event_prefixed else ("patch_dags",)


def parse_extra(raw: Any) -> tuple[dict, bool]:
    """(mapping, is_python_repr). JSON objects as written by the API and CLI; the scheduler's
    Python repr of (key, value) pairs, read with ast.literal_eval (never eval); else {}."""
    if isinstance(raw, dict):
        return raw, False
    if not isinstance(raw, str) or not raw.strip():
        return {}, False
    try:
        data = json.loads(raw)
        return (data if isinstance(data, dict) else {}), False
    except (ValueError, RecursionError):
        pass
    text = raw.strip()
    if len(text) > _MAX_REPR or text[:1] not in "[({":     # the scheduler's is ~100 chars
        return {}, False
    try:
        data = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return {}, False
    if isinstance(data, dict):
        return data, True
    if isinstance(data, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2
                                               for p in data):
        return {str(k): v for k, v in data}, True
    return {}, False


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _argv(cmd: Any) -> list[str] | None:
    if isinstance(cmd, (list, tuple)):
        return [str(a) for a in cmd]
    if isinstance(cmd, str) and cmd.startswith("[") and len(cmd) <= _MAX_REPR:
        try:
            argv = ast.literal_eval(cmd)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
        if isinstance(argv, (list, tuple)):
            return [str(a) for a in argv]
    return None


def command_line(cmd: Any) -> str:
    """AF2/AF3 log the CLI argv as the repr of a list: turn it back into a command line."""
    argv = _argv(cmd)
    if argv:
        argv[0] = os.path.basename(argv[0]) or argv[0]
        return " ".join(shlex.quote(p) for p in argv)
    return " ".join(str(cmd).split())[:1000]


def _is_regex_command(argv: list[str] | None) -> bool:
    # argparse accepts unambiguous abbreviations (--treat-dag-id-as)
    return bool(argv) and any(len(a) > len("--treat") and
                              any(f.startswith(a.split("=", 1)[0]) for f in _REGEX_FLAGS)
                              for a in argv[1:] if a.startswith("--treat"))


def normalise(name: str, dag_id: str | None, owner: str | None, when: datetime | None,
              extra_raw: Any, caps: Capabilities) -> AuditEvent | None:
    """One event-log row as an AuditEvent; None for rows that are not pause changes."""
    if when is None:
        return None
    name = str(name or "")
    base = name.split(".", 1)[1] if name.startswith(("api.", "ui.")) else name
    extra, is_repr = parse_extra(extra_raw)
    dag_id = dag_id or None
    user = owner or None
    is_paused = _as_bool(extra.get("is_paused"))
    detail: str | None = None
    pattern = kind = None
    if name in PAUSECTL_EVENTS:
        source = str(extra.get("source") or "pausectl")
        via = {"pausectl": "pausectl", "PauseDagsOperator": "operator"}.get(source, source)
        event, is_paused, detail = name, name == "pausectl.pause", extra.get("reason")
    elif base == "paused" and owner == "scheduler" and (is_repr or not extra):
        # the scheduler's own pause (a UI user's toggle has a JSON extra)
        event, via, is_paused, detail = "paused", "airflow", True, AUTO_PAUSE_DETAIL
    elif base in ("patch_dag", "paused"):
        event, via = "patch_dag", "api"
        if not caps.event_is_paused_trusted and base == "patch_dag":
            is_paused = None
    elif base == "patch_dags":
        event, via, dag_id = "patch_dags", "bulk", None
        if not caps.event_is_paused_trusted:
            is_paused = None
        for key, k in (("dag_id_prefix_pattern", "prefix"), ("dag_id_pattern", "ilike")):
            if extra.get(key) not in (None, ""):
                pattern, kind = str(extra[key]), k
                break
        detail = pattern if pattern is not None else (
            str(extra_raw) if isinstance(extra_raw, str) and not extra else None)
    elif base in ("cli_dag_pause", "cli_dag_unpause"):
        event, via, is_paused = base, "cli", base == "cli_dag_pause"
        cmd = extra.get("full_command") or extra.get("command")
        detail = command_line(cmd) if cmd else None
        if dag_id and _is_regex_command(_argv(cmd)):
            pattern, kind, dag_id = dag_id, "regex", None
    else:
        return None
    if dag_id is None and pattern is None and via != "bulk":
        return None
    if user in ("Anonymous", "anonymous") and via in ("api", "bulk"):
        why = "Airflow all-admins mode" if user == "Anonymous" else "not logged in"
        detail = f"{detail}; no user recorded ({why})" if detail else \
            f"no user recorded ({why})"
    return AuditEvent(dag_id=dag_id, event=event, when=when, user=user, is_paused=is_paused,
                      via=via, detail=detail or None, pattern=pattern, pattern_kind=kind)


def normalise_rows(rows: Iterable[tuple], caps: Capabilities,
                   since: datetime | None = None) -> list[AuditEvent]:
    """(row id, event, dag_id, owner, when, extra) per `log` row -> AuditEvents, each row
    once (REST and dagmodel may read one row through two queries), none before `since`."""
    seen: set[Any] = set()
    out: list[AuditEvent] = []
    for key, event, dag_id, owner, when, extra in rows:
        if key in seen:
            continue
        seen.add(key)
        ev = normalise(event, dag_id, owner, when, extra, caps)
        if ev is not None and (since is None or ev.when >= since):
            out.append(ev)
    return out


# ---------------------------------------------------------------- which DAGs an event concerns

@functools.lru_cache(maxsize=256)
def _regex(text: str) -> re.Pattern:
    return re.compile(text)


class _Ids:
    """The requested DAG ids, indexed so that one pattern finds its matches without a regex
    run per id (attribution: up to audit_limit events x thousands of DAGs)."""

    def __init__(self, ids: list[str]):
        self.ids = sorted(ids)
        self.blob = "\n".join(d.lower() for d in self.ids)
        self.starts = [0]
        for d in self.ids[:-1]:
            self.starts.append(self.starts[-1] + len(d) + 1)

    def ilike(self, term: str) -> set[str]:
        rx = ilike_rx(term)
        out: set[str] = set()
        pos = 0
        while self.ids:
            m = rx.search(self.blob, pos)
            if m is None:
                break
            i = bisect.bisect_right(self.starts, m.start()) - 1
            out.add(self.ids[i])
            if i + 1 >= len(self.starts):
                break                # (search clamps a pos past the end: stop here)
            pos = self.starts[i + 1]
        return out

    def prefix(self, term: str) -> set[str]:
        lower, upper = ("", None) if term == "~" else prefix_bounds(term)
        i = bisect.bisect_left(self.ids, lower)
        j = len(self.ids) if upper is None else bisect.bisect_left(self.ids, upper)
        return set(self.ids[i:j])


def _matches(ev: AuditEvent, ids: _Ids, caps: Capabilities) -> set[str]:
    """The ids a bulk-pattern or CLI-regex event may have changed."""
    pattern = ev.pattern or ""
    if ev.pattern_kind == "regex":
        if len(pattern) > 1000:          # untrusted text: no monster regex on every id
            return set()
        try:
            rx = _regex(pattern)
            return {d for d in ids.ids if rx.search(d)}
        except (re.error, RecursionError, OverflowError):
            return set()
    terms = [pattern]
    if "|" in pattern and (ev.pattern_kind == "prefix" or caps.pattern_or):
        terms = [t.strip() for t in pattern.split("|") if t.strip()] or [pattern]
    if ev.pattern_kind == "prefix":
        return set().union(*(ids.prefix(t) for t in terms))
    if pattern in ("~", "%"):
        return set(ids.ids)
    return set().union(*(ids.ilike(t) for t in terms))


def concerns(ev: AuditEvent, dag_id: str, caps: Capabilities) -> bool:
    """Whether an event (a bulk pattern or a CLI regex when dag_id is None) may have changed
    this DAG. Attribution by the pattern only: a bulk request's tags/owners/paused filters
    narrow it further, so this can over-attribute, never miss."""
    if ev.dag_id is not None:
        return ev.dag_id == dag_id
    return ev.pattern is not None and dag_id in _matches(ev, _Ids([dag_id]), caps)


def attribute(events: Iterable[AuditEvent], dag_ids: Iterable[str] | None,
              caps: Capabilities) -> list[AuditEvent]:
    """Events of these DAGs, newest first: a DAG's own events, and every bulk-pattern or CLI
    regex event that matches it, copied with dag_id set to that DAG (the pattern stays in
    `pattern`). dag_ids None: every event unchanged."""
    out: list[AuditEvent] = []
    wanted = None if dag_ids is None else set(dag_ids)
    index = None
    for ev in events:
        if wanted is None:
            out.append(ev)
        elif ev.dag_id is not None:
            if ev.dag_id in wanted:
                out.append(ev)
        elif ev.pattern is not None:
            index = index or _Ids(list(wanted))
            out.extend(ev.for_dag(d) for d in sorted(_matches(ev, index, caps)))
    out.sort(key=lambda e: e.when, reverse=True)
    return out
