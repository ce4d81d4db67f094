"""Time-boxed holds: `pausectl hold ENV DAG --for 4h --reason ...` pauses (or keeps running) a
DAG now, without a pull request, and the hold ends by itself.

A hold lives in the Airflow Variable `pausectl.holds.<env>` (JSON, version 1):

    {"format": 1, "holds": [{"dag_id": "etl_daily", "paused": true, "by": "alice",
     "reason": "INC-7", "since": "2026-12-01T10:00:00Z", "until": "2026-12-01T14:00:00Z",
     "renewals": 0}]}

A list, not an object keyed by dag_id: Airflow's API masks the values of JSON keys that look
like secrets when it reads a Variable back (a DAG named `token_refresh` would read as "***").

Anyone with Variable access can write that Variable, so it is read as hostile input: at most
MAX_BYTES, MAX_HOLDS entries, DAG ids in Airflow's own alphabet, bounded single-line texts
without control characters, timestamps that parse; an entry of the wrong shape is dropped with a
warning (it holds nothing), a Variable of the wrong shape holds nothing and says so. Strings are
kept as written and neutralised by each sink (terminal, Markdown, JSON) like every other string.

While a hold is in force, plan, apply, drift and doctor leave its DAG alone and show it as
`held (by, reason, ends in)`. Once its `until` has passed the hold no longer counts: the next
plan puts back what git says through the normal plan/apply path, and that apply (or a watch
tick) removes the expired record and announces it (holds_flow.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.core.timeutil import iso, parse_timestamp

FORMAT = 1
MAX_BYTES = 256 * 1024
MAX_HOLDS = 2_000
MAX_TEXT = 500
DAG_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")     # Airflow's KEY_REGEX for dag ids
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def holds_key(env: str) -> str:
    return f"pausectl.holds.{env}"


@dataclass(frozen=True, slots=True)
class HoldRecord:
    """One DAG held at `paused` by `by`, because `reason`, from `since` until `until`."""

    dag_id: str
    paused: bool
    by: str
    reason: str
    since: datetime
    until: datetime
    renewals: int = 0

    def active(self, at: datetime) -> bool:
        return at < self.until

    def describe(self, at: datetime) -> str:
        """`held (by alice, reason 'INC-7', ends in 3h59m)`, the one wording everywhere."""
        state = "paused" if self.paused else "running"
        if self.active(at):
            when = f"ends in {ends_in(self.until - at)}"
        else:
            when = f"expired at {iso(self.until)}"
        renewed = f", renewed {self.renewals}x" if self.renewals else ""
        return f"held {state} (by {self.by}, reason {self.reason!r}, {when}{renewed})"

    def to_json(self) -> dict:
        return {"dag_id": self.dag_id, "paused": self.paused, "by": self.by, "reason": self.reason,
                "since": iso(self.since), "until": iso(self.until), "renewals": self.renewals}


def ends_in(delta: timedelta) -> str:
    minutes = max(0, -int(-delta.total_seconds() // 60))     # rounded up: it ends within
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    return f"{hours}h{mins:02d}m" if hours else f"{mins}m"


def check_text(value, what: str) -> str:
    """A bounded one-line text, or ValueError (reasons and names from users and Variables)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{what} is longer than {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise ValueError(f"{what} contains control characters")
    return value


def check_dag_id(value) -> str:
    if not isinstance(value, str) or not DAG_ID.match(value):
        raise ValueError("not a DAG id (letters, digits, '_', '.', '-'; at most 250)")
    return value


def _record(raw) -> HoldRecord:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    dag_id = check_dag_id(raw.get("dag_id"))
    if not isinstance(raw.get("paused"), bool):
        raise ValueError("'paused' must be true or false")
    renewals = raw.get("renewals", 0)
    if not isinstance(renewals, int) or isinstance(renewals, bool) or not 0 <= renewals <= 10_000:
        raise ValueError("'renewals' must be a small non-negative integer")
    times = []
    for key in ("since", "until"):
        text = raw.get(key)
        if not isinstance(text, str) or len(text) > 40:
            raise ValueError(f"{key!r} must be a timestamp")
        times.append(parse_timestamp(text))        # ValueError on garbage, range errors too
    if times[1] <= times[0]:
        raise ValueError("'until' must be after 'since'")
    return HoldRecord(dag_id, raw["paused"], check_text(raw.get("by"), "'by'"),
                      check_text(raw.get("reason"), "'reason'"), times[0], times[1], renewals)


def parse(raw: str | None, env: str) -> tuple[dict[str, HoldRecord], list[str]]:
    """The holds of a Variable's text, and a warning per thing ignored. Never raises."""
    if raw is None:
        return {}, []
    key = holds_key(env)
    if len(raw) > MAX_BYTES:
        return {}, [f"Variable {key} is larger than {MAX_BYTES // 1024} KiB: no hold honoured"]
    from reconciler.core.errors import PausectlError
    from reconciler.core.safejson import loads
    try:
        data = loads(raw, None, what="holds")
    except (ValueError, PausectlError):
        return {}, [f"Variable {key} is not valid JSON: no hold honoured"]
    if not isinstance(data, dict) or data.get("format") != FORMAT \
            or not isinstance(data.get("holds"), list):
        return {}, [f"Variable {key} is not a pausectl holds record (format {FORMAT}): "
                    "no hold honoured"]
    items = data["holds"]
    warnings = []
    if len(items) > MAX_HOLDS:
        warnings.append(f"Variable {key} holds {len(items)} entries; only the first "
                        f"{MAX_HOLDS} are read")
        items = items[:MAX_HOLDS]
    out = {}
    for i, entry in enumerate(items):
        try:
            rec = _record(entry)
        except ValueError as e:
            dag_id = entry.get("dag_id") if isinstance(entry, dict) else None
            shown = dag_id if isinstance(dag_id, str) and DAG_ID.match(dag_id) else f"entry {i}"
            warnings.append(f"Variable {key}: hold of {shown} ignored ({e})")
            continue
        if rec.dag_id in out:
            warnings.append(f"Variable {key}: {rec.dag_id} held twice; the first is used")
            continue
        out[rec.dag_id] = rec
    return out, warnings


def dumps(holds: dict[str, HoldRecord]) -> str:
    text = json.dumps({"format": FORMAT,
                       "holds": [h.to_json() for _, h in sorted(holds.items())]},
                      separators=(",", ":"))
    if len(text) > MAX_BYTES:
        from reconciler.core.errors import PausectlError
        raise PausectlError(f"too many holds: the record would exceed {MAX_BYTES // 1024} KiB; "
                            "release some first (`pausectl hold ENV --release DAG...`)")
    return text


def read(store, env: str) -> tuple[dict[str, HoldRecord], list[str]]:
    """The holds of `env` from its Variable (`store`: any VariableStore), with warnings."""
    return parse(store.get_variable(holds_key(env)), env)


def split(holds: dict[str, HoldRecord], at: datetime
          ) -> tuple[dict[str, HoldRecord], dict[str, HoldRecord]]:
    """(in force, expired) at `at`."""
    active = {d: h for d, h in holds.items() if h.active(at)}
    return active, {d: h for d, h in holds.items() if d not in active}


@dataclass(frozen=True)
class HoldView:
    """What the later stages read of the holds (Observation.holds)."""

    active: dict
    expired: dict
    warnings: tuple = ()

    @classmethod
    def of(cls, holds: dict[str, HoldRecord], at: datetime, warnings=()) -> "HoldView":
        active, expired = split(holds, at)
        return cls(active, expired, tuple(warnings))

    def __bool__(self) -> bool:
        return bool(self.active or self.expired or self.warnings)
