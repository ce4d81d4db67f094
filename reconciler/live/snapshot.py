"""The `snapshot` backend: live state read from (and written back to) a JSON file.

Used offline (plans in pull requests without Airflow access), for exports, and in tests.
Variables (locks, markers) live in a sidecar file `<snapshot>.vars.json`.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from reconciler.core.errors import PausectlError
from reconciler.live.base import AssetEdge, AuditEvent, DagRun, LiveDag, SetPausedResult
from reconciler.live.snapshot_fast import NO_ITEMS, STR_NONE, columns, decoded

_FIELDS = {"dag_id": str, "is_paused": bool, "is_stale": bool, "has_import_errors": bool}


def json_line(raw: str, index: int, key: str | None) -> int:
    """Best-effort line of dags[index] (or of its key) in a JSON text, for error messages."""
    from reconciler.state.yamlload import load_yaml_bytes
    try:
        doc = load_yaml_bytes(raw.encode("utf-8"), "")
        path = ("dags", index) + ((key,) if key else ())
        return doc.mark(path)[0]
    except PausectlError:
        return 1


def _diagnose(raw: str, shown: str, i: int, d) -> None:
    """Raise the precise error for dags[i], naming its line."""
    if not isinstance(d, dict):
        raise PausectlError(f"dags[{i}]: expected an object", shown, json_line(raw, i, None))
    for key, typ in _FIELDS.items():
        if key not in d and key in ("dag_id", "is_paused"):
            raise PausectlError(f"dags[{i}].{key}: missing", shown, json_line(raw, i, None))
        if key in d and (type(d[key]) is not typ or (typ is str and not d[key])):
            raise PausectlError(f"dags[{i}].{key}: expected a {'non-empty string' if typ is str else 'boolean'}",
                                shown, json_line(raw, i, key))
    for key in ("tags", "owners"):
        v = d.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise PausectlError(f"dags[{i}].{key}: expected a list of strings", shown,
                                json_line(raw, i, key))
    for key in _OPTIONAL_STR:
        if d.get(key) is not None and type(d[key]) is not str:
            raise PausectlError(f"dags[{i}].{key}: expected a string or null", shown,
                                json_line(raw, i, key))
    if not _optional_ok(d):
        raise PausectlError(f"dags[{i}].max_active_runs: expected an integer from 0 to "
                            "1000000 or null", shown, json_line(raw, i, "max_active_runs"))
    raise PausectlError(f"dags[{i}]: invalid DAG entry", shown, json_line(raw, i, None))


_OPTIONAL_STR = ("fileloc", "last_parsed_time", "timetable_summary", "next_dagrun_run_after")


def _optional_ok(d: dict) -> bool:
    """The optional fields are strings or null, max_active_runs a bounded int or null."""
    for key in _OPTIONAL_STR:
        v = d.get(key)
        if v is not None and type(v) is not str:
            return False
    v = d.get("max_active_runs")
    return v is None or (type(v) is int and 0 <= v <= 1_000_000)




def parse_snapshot(raw: str, shown: str, data=None) -> list[LiveDag]:
    """Parse and check a snapshot document; errors name file:line. Fast for 100k DAGs.
    Bounded (safejson): no NaN/Infinity, huge numbers or deep nesting; a boolean written as a
    string ("false") is an error at its line, never read as true. `data`: `raw` already parsed."""
    if data is None:
        data = _bounded(raw, shown)
    if not isinstance(data, dict) or not isinstance(data.get("dags"), list):
        raise PausectlError("snapshot must be an object with a 'dags' list", shown, 1, 1)
    fast = columns(data["dags"])    # the same checks over all DAGs at once (C)
    if fast is not None:
        return fast
    out = []
    seen = set()
    append = out.append
    for i, d in enumerate(data["dags"]):
        # one cheap check per DAG; the slow, precise diagnosis runs only when it fails
        try:
            get = d.get
            tags, owners = get("tags", NO_ITEMS), get("owners", NO_ITEMS)
            if type(tags) is not list or type(owners) is not list:
                raise TypeError
            "".join(tags), "".join(owners)      # TypeError on an item not a string, in C
            dag = LiveDag(d["dag_id"], d["is_paused"], tuple(tags), tuple(owners),
                          get("is_stale", False), get("has_import_errors", False),
                          get("fileloc"), get("last_parsed_time"), get("timetable_summary"),
                          get("next_dagrun_run_after"), get("max_active_runs"))
            runs = dag.max_active_runs
            ok = (type(dag.dag_id) is str and dag.dag_id and type(dag.is_paused) is bool
                  and type(dag.is_stale) is bool and type(dag.has_import_errors) is bool
                  and {type(dag.fileloc), type(dag.last_parsed_time),
                       type(dag.timetable_summary), type(dag.next_dagrun_run_after)} <= STR_NONE
                  and (runs is None or (type(runs) is int and 0 <= runs <= 1_000_000)))
        except (TypeError, KeyError, AttributeError):
            ok = False
        if not ok:
            _diagnose(raw, shown, i, d)
        if dag.dag_id in seen:
            raise PausectlError(f"dags[{i}]: duplicate dag_id {dag.dag_id!r}", shown,
                                json_line(raw, i, "dag_id"))
        seen.add(dag.dag_id)
        append(dag)
    return out


def snapshot_document(dags: Iterable[LiveDag], environment: str | None = None,
                      source: str | None = None) -> dict:
    from reconciler.core.timeutil import iso, utcnow
    doc = {"environment": environment, "generated_at": iso(utcnow()), "source": source,
           "dags": [d.to_json() for d in sorted(dags, key=lambda d: d.dag_id)]}
    return {k: v for k, v in doc.items() if v is not None}


def write_json_atomic(path: Path, data) -> None:
    from reconciler.core.jsonout import dumps      # json.dumps(indent=1)'s bytes, in C
    write_text_atomic(path, dumps(data, indent=1) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename: a reader never sees half a file, and a symlink put
    in place of the file meanwhile is replaced, not followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---- optional `events` and `runs` (Airflow's event log and dag runs, for offline plans) ---

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _bounded(raw: str, shown: str):
    from reconciler.core.safejson import loads
    return loads(raw, shown)


def _records(backend: "SnapshotBackend", key: str, build) -> list:
    """The `key` list of the snapshot, each item built by `build(item) -> value | str`
    (a str is what is wrong with it: reported as file:line, like a bad DAG entry)."""
    shown = backend.shown
    try:
        raw = backend.text_to_parse()
        if raw is None:
            return []
        raw, data = backend.document(raw)
    except (OSError, ValueError, PausectlError):
        return []           # list_dags reports an unreadable snapshot
    items = data.get(key) if isinstance(data, dict) else None
    if items is None:
        return []
    if not isinstance(items, list):
        raise PausectlError(f"snapshot {key!r} must be a list", shown, _key_line(raw, (key,)))
    out = []
    for i, item in enumerate(items):
        value = build(item) if isinstance(item, dict) else "expected an object"
        if isinstance(value, str):
            raise PausectlError(f"{key}[{i}]: {value}", shown, _key_line(raw, (key, i)))
        out.append(value)
    return out


def _key_line(raw: str, path: tuple) -> int:
    from reconciler.state.yamlload import load_yaml_bytes
    try:
        return load_yaml_bytes(raw.encode("utf-8"), "").mark(path)[0]
    except PausectlError:
        return 1


def _time(value, name: str, required: bool = False):
    """A timestamp field: (datetime | None, error | None)."""
    from reconciler.core.timeutil import parse_timestamp
    if value is None and not required:
        return None, None
    try:
        return parse_timestamp(value), None
    except (TypeError, ValueError, AttributeError):
        return None, f"{name}: expected an ISO 8601 timestamp"


def _opt_str(d: dict, *keys: str) -> str | None:
    return next((k for k in keys if d.get(k) is not None and type(d[k]) is not str), None)


def _event(d: dict) -> AuditEvent | str:
    when, err = _time(d.get("when"), "when", required=True)
    if err:
        return err
    if type(d.get("via")) is not str or not d["via"]:
        return "via: expected a non-empty string (api, bulk, cli, pausectl, airflow)"
    bad = _opt_str(d, "dag_id", "event", "user", "detail")
    if bad:
        return f"{bad}: expected a string"
    if d.get("is_paused") is not None and type(d["is_paused"]) is not bool:
        return "is_paused: expected a boolean"
    return AuditEvent(dag_id=d.get("dag_id") or None, event=d.get("event") or d["via"],
                      when=when, user=d.get("user"), is_paused=d.get("is_paused"),
                      via=d["via"], detail=d.get("detail"))


def _run(d: dict) -> DagRun | str:
    for key in ("dag_id", "run_id", "state"):
        if type(d.get(key)) is not str or not d[key]:
            return f"{key}: expected a non-empty string"
    times = {}
    for key in ("run_after", "start_date", "end_date"):
        times[key], err = _time(d.get(key), key)
        if err:
            return err
    return DagRun(d["dag_id"], d["run_id"], d["state"], **times)


class SnapshotBackend:
    def __init__(self, name: str, path: Path, shown: str | None = None):
        self.name = name
        self.path = path
        self.shown = shown or str(path)
        self._vars_path = path.with_name(path.name + ".vars.json")
        self._parsed: tuple[str, object] | None = None
        self._dags_only: bytes | None = None     # the file as list_dags decoded it, if so

    def text_to_parse(self) -> str | None:
        """The file's text, to parse for its events, runs or assets; None when it is, byte
        for byte, the file list_dags last decoded as DAGs only (nothing else is in it).
        Not UTF-8: a ValueError (list_dags reports it)."""
        data = self.path.read_bytes()
        if self._dags_only is not None and data == self._dags_only:
            return None
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    def document(self, raw: str) -> tuple[str, object]:
        """(raw, its parsed JSON), parsed once per content: a plan reads the file for its DAGs,
        then its events (and assets, runs); re-reading the text is cheap, parsing 100k DAGs is
        not (~1 s). Keyed by the text itself, not mtime, so a rewrite is never missed."""
        hit = self._parsed
        if hit is not None and hit[0] == raw:
            return hit
        self._parsed = (raw, _bounded(raw, self.shown))
        return self._parsed

    def list_dags(self) -> list[LiveDag]:
        from reconciler.core.paths import confine
        if self.path.exists() or self.path.is_symlink():
            # a directory, a FIFO (would block forever) or a dangling link: one clear line
            confine(str(self.path), None, doc=self.shown, what="snapshot")
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise PausectlError(f"snapshot for {self.name} not found", self.shown) from None
        except OSError as e:
            raise PausectlError(f"cannot read snapshot: {e.strerror}", self.shown) from None
        from reconciler.core.safejson import MAX_BYTES
        fast = decoded(data) if len(data) <= MAX_BYTES else None
        if fast is not None:        # the usual snapshot: DAGs only, decoded and checked in C
            self._dags_only = data
            return fast
        try:
            raw = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
            raise PausectlError("snapshot is not valid UTF-8", self.shown, line, col) from None
        raw, data = self.document(raw)
        return parse_snapshot(raw, self.shown, data)

    def set_paused(self, dag_ids, paused: bool, progress=None) -> SetPausedResult:
        raw = _bounded(self.path.read_text(encoding="utf-8"), self.shown)
        wanted = set(dag_ids)
        result = SetPausedResult()
        for d in raw["dags"]:
            if d["dag_id"] in wanted:
                if d["is_paused"] != paused:
                    d["is_paused"] = paused
                result.changed.append(d["dag_id"])
                wanted.discard(d["dag_id"])
        for dag_id in wanted:
            result.errors[dag_id] = f"DAG {dag_id} not found in {self.name}"
        write_json_atomic(self.path, raw)
        if progress:
            progress(len(result.changed) + len(result.errors))
        return result

    def audit_events(self, dag_ids=None, since: datetime | None = None) -> list[AuditEvent]:
        """From the optional `events` key (the event log of an export, or a test's fixture)."""
        ids = None if dag_ids is None else set(dag_ids)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        out = [e for e in _records(self, "events", _event)
               if (ids is None or e.dag_id is None or e.dag_id in ids)
               and (since is None or e.when >= since)]
        return sorted(out, key=lambda e: e.when, reverse=True)

    def asset_edges(self) -> list[AssetEdge]:
        """Edges from the optional `assets` key: [{name, producers: [...], consumers: [...]}]."""
        try:
            raw = self.text_to_parse()
            data = {} if raw is None else self.document(raw)[1]
        except (OSError, ValueError, PausectlError):
            return []       # list_dags reports an unreadable snapshot
        assets = data.get("assets") if isinstance(data, dict) else None
        if assets is None:
            return []
        if not isinstance(assets, list):
            raise PausectlError("snapshot 'assets' must be a list", self.shown)
        out = []
        for i, a in enumerate(assets):
            ok = isinstance(a, dict) and isinstance(a.get("name"), str) and all(
                isinstance(a.get(k, []), list) and all(isinstance(x, str) for x in a.get(k, []))
                for k in ("producers", "consumers"))
            if not ok:
                raise PausectlError(f"assets[{i}]: expected {{name, producers: [dag_id], "
                                    f"consumers: [dag_id]}}", self.shown)
            for p in a.get("producers", []):
                for c in a.get("consumers", []):
                    out.append(AssetEdge(p, c, a["name"]))
        return out

    def dag_runs(self, dag_id: str, limit: int = 25) -> list[DagRun]:
        """From the optional `runs` key: [{dag_id, run_id, state, run_after, ...}]."""
        runs = [r for r in _records(self, "runs", _run) if r.dag_id == dag_id]
        runs.sort(key=lambda r: r.run_after or r.start_date or _EPOCH, reverse=True)
        return runs[: max(1, int(limit))]

    def _vars(self) -> dict:
        shown = self.shown + ".vars.json"
        try:
            data = _bounded(self._vars_path.read_text(encoding="utf-8"), shown)
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as e:
            raise PausectlError(f"cannot read Variables: {e}", shown) from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise PausectlError("Variables file must map names to strings", shown, 1, 1)
        return data

    def get_variable(self, key: str) -> str | None:
        return self._vars().get(key)

    def set_variable(self, key: str, value: str) -> None:
        v = self._vars()
        v[key] = value
        write_json_atomic(self._vars_path, v)

    def create_variable(self, key: str, value: str) -> bool:
        # O_EXCL on a per-key file makes creation atomic between processes
        lock = self._vars_path.with_name(f"{self._vars_path.name}.{key}.lock")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        try:
            if self.get_variable(key) is not None:
                return False
            self.set_variable(key, value)
            return True
        finally:
            os.unlink(lock)

    def delete_variable(self, key: str) -> None:
        v = self._vars()
        if key in v:
            del v[key]
            write_json_atomic(self._vars_path, v)

    def close(self) -> None:
        pass
