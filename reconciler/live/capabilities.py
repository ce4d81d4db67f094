"""What a given Airflow's REST API does correctly, chosen from the server's `/version`.

The airflow-api backend reads `/api/v2/version` (Airflow 3) or `/api/v1/version` (Airflow 2)
once and derives a `Capabilities` value from that version; the bulk path, the pattern syntax
and the event-log reading follow it. Every fact below was read in Airflow's own source for
each version of the test matrix (docs/airflow-versions.md has the table with the file and
function of each) and measured on real servers (tests/live/test_capabilities_live.py):

* `PATCH /dags` (bulk) on 3.0.0 .. 3.2.1 updates only the page it selects (`limit`, capped by
  `[api] maximum_page_limit`, with `offset`, no ORDER BY) while `total_entries` counts every
  match; 3.2.2 (apache/airflow PR #63665) updates every match. On Airflow 2 (REST v1) it
  updates one page too, ordered by dag_id, and has no `paused` filter (connexion's strict
  validation answers 400 to it).
* `|` ORs terms of `dag_id_pattern` from 3.2.1 (not in 3.1.8; 3.2.0 was not read, so it is
  treated like 3.1.8: the verifying GET would catch it either way); never on Airflow 2.
* `dag_id_prefix_pattern` (case-sensitive range scan, `|` ORs, trailing non-alphanumerics
  dropped) from 3.2.2, on GET and bulk PATCH /dags.
* 3.0.x logs `is_paused: false` in the event log's `extra` for every PATCH (apache/airflow
  #55074, fixed by #55091 in 3.1.0): there the value is not trusted.
* From 3.1.0 GET /eventLogs returns only rows whose dag_id is empty or a DAG the user may read
  (`PermittedEventLogFilter`): a CLI `--treat-dag-id-as-regex` row (the regex in dag_id) is
  invisible through the REST API there; 3.0.x and Airflow 2 return it (and the dagmodel
  backend reads the table itself).

A version this module does not know is given the behaviour of the nearest measured version
below it (a pre-release counts as below its release); an unreadable version gets the most
conservative set. Nothing here is ever trusted blindly: every bulk change is verified by
listing (bulk.py).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

#: the versions whose source was read and which the test matrix runs
MEASURED = ("2.9.3", "2.10.5", "2.11.2", "3.0.6", "3.1.8", "3.2.1", "3.2.2", "3.3.2")
SUPPORTED = "2.9 through 3.3"

_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?(.*)$")


def parse_version(text: str | None) -> tuple[int, int, int, int] | None:
    """(major, minor, patch, final) with final 0 for a pre-release ("3.2.2rc1", "3.3.0.dev0",
    "3.1.0b2") and 1 for a release, including local/post suffixes ("2.10.5+composer",
    "2.9.3.post1"). None if it does not look like a version."""
    if not text:
        return None
    m = _VERSION_RE.match(str(text))
    if not m:
        return None
    rest = m.group(4).lower()
    pre = bool(re.match(r"^[.-]?(a|b|c|rc|alpha|beta|pre|preview|dev)\d*", rest))
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), 0 if pre else 1


def _at_least(v: tuple[int, int, int, int] | None, major: int, minor: int, patch: int) -> bool:
    return v is not None and v >= (major, minor, patch, 1)


@dataclass(frozen=True)
class Capabilities:
    """How to change and read pause state on one server. See the module docstring."""

    version: str | None          # as the server reported it (None: unknown)
    api: str                     # "v2" (Airflow 3) | "v1" (Airflow 2)
    bulk_scope: str              # "all": PATCH /dags updates every match; "page": one page
    bulk_ordered: bool           # the one-page PATCH orders by dag_id (so offset pages it)
    bulk_paused_filter: bool     # PATCH /dags takes `paused=` (only DAGs at the other state)
    pattern_or: bool             # `|` ORs terms in dag_id_pattern
    prefix_pattern: bool         # dag_id_prefix_pattern on GET and PATCH /dags
    event_is_paused_trusted: bool  # extra's is_paused in patch_dag(s) events is the value set
    event_prefixed: bool         # AF2 names REST events api.* / ui.*
    event_dag_id_pattern: bool   # GET /eventLogs takes dag_id_pattern
    event_regex_rows: bool       # GET /eventLogs shows rows whose dag_id is no DAG (CLI regex)
    included_events_csv: bool    # GET /eventLogs included_events: "a,b" (v1) or repeated (v2)
    auth: tuple[str, ...]        # what password auth can use: jwt (/auth/token), session, basic
    auto_pause: bool             # the scheduler pauses after max_consecutive_failed_dag_runs
    supported: bool              # inside the supported range (2.9 .. 3.3)
    measured: bool               # one of MEASURED

    @property
    def bulk_all(self) -> bool:
        return self.bulk_scope == "all"

    @property
    def bulk_strategy(self) -> str:
        """How set_paused flips many DAGs on this server (bulk.py)."""
        if self.bulk_all:
            return "one request per pattern"
        if self.bulk_paused_filter:
            return "repeat the PATCH with paused=!target until no match is left"
        return "page the PATCH by offset (ordered by dag_id)"

    @property
    def pattern_param(self) -> str:
        return "dag_id_prefix_pattern" if self.prefix_pattern else "dag_id_pattern"

    def to_json(self) -> dict:
        out = asdict(self)
        out["auth"] = list(self.auth)
        out["bulk_strategy"] = self.bulk_strategy
        return out


def capabilities_for(version: str | None, api: str) -> Capabilities:
    """The Capabilities of a server reporting `version` on REST `api` ("v1" | "v2")."""
    v = parse_version(version)
    known = v is not None
    if api == "v1":
        return Capabilities(
            version=version, api="v1", bulk_scope="page", bulk_ordered=True,
            bulk_paused_filter=False, pattern_or=False, prefix_pattern=False,
            event_is_paused_trusted=True, event_prefixed=True, event_dag_id_pattern=False,
            event_regex_rows=True, included_events_csv=True, auth=("session", "basic"),
            auto_pause=_at_least(v, 2, 9, 0) or not known,
            supported=known and (2, 9, 0, 1) <= v < (3, 0, 0, 0),
            measured=version in MEASURED)
    if api != "v2":
        raise ValueError(f"unknown REST API {api!r}")
    return Capabilities(
        version=version, api="v2",
        bulk_scope="all" if _at_least(v, 3, 2, 2) else "page", bulk_ordered=False,
        bulk_paused_filter=True,
        pattern_or=_at_least(v, 3, 2, 1),
        prefix_pattern=_at_least(v, 3, 2, 2),
        event_is_paused_trusted=_at_least(v, 3, 1, 0),
        event_prefixed=False,
        event_dag_id_pattern=_at_least(v, 3, 1, 0),
        event_regex_rows=not _at_least(v, 3, 1, 0),
        included_events_csv=False, auth=("jwt",), auto_pause=True,
        supported=known and (3, 0, 0, 1) <= v < (3, 4, 0, 0),
        measured=version in MEASURED)


def for_orm(version: str | None) -> Capabilities:
    """The event-log facts for the dagmodel backend, which reads the same `log` rows (all of
    them: no REST permission filter hides the CLI regex rows)."""
    v = parse_version(version)
    caps = capabilities_for(version, "v2" if v is None or v[0] >= 3 else "v1")
    return replace(caps, event_regex_rows=True)
