"""The airflow-api backend's writes: set_paused and pause_except (bulk path first, bulk.py,
then single PATCHes for what it did not confirm)."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Callable, Iterable
from urllib.parse import quote

from reconciler.core.errors import BackendError
from reconciler.live import bulk as _bulk
from reconciler.live.base import LiveDag, Progress, SetPausedResult
from reconciler.live.capabilities import Capabilities
from reconciler.live.patterns import within_scope
from reconciler.live.rest.errors import Fatal, one_line
from reconciler.live.rest.reads import dag_field_error

log = logging.getLogger(__name__)

# What Airflow accepts as a dag_id (airflow.utils.helpers.KEY_REGEX); only such ids go in a pattern.
DAG_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class _Run:
    """Shared state of one set_paused call."""

    __slots__ = ("fatal",)

    def __init__(self) -> None:
        self.fatal: str | None = None


class Writes:
    """Mixed into AirflowApiBackend (which provides _call, caps, bulk settings, ...)."""

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
            # terms must match no other DAG of the last listing, at any state;
            target_set = set(targets)
            if self._known is None and not caps.pattern_or:
                self.list_dags()      # without `|`, exact ids are one request each: find prefixes
            avoid = None if self._known is None else [d for d in self._known
                                                      if d not in target_set]
            # the GET of each pattern (the server's own matching) decides before anything is
            # sent; the read-back after the PATCH is the proof
            kind = "prefix" if caps.prefix_pattern else "ilike"
            # after a scoped listing `avoid` is only what it read: terms stay inside it
            within = None if self._scope is None else within_scope(self._scope, kind)
            singles = self._via_bulk(caps, targets, paused, result, state, tick, avoid=avoid,
                                     before=None, min_bulk=self.bulk_min, kind=kind,
                                     within=within)
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
            # verified by reading only what is still running among the matches (`paused=
            # false`): after the pause, a page of the kept DAGs, not a second full listing
            singles = self._via_bulk(caps, targets, True, result, state, tick, avoid=avoid,
                                     before=before, min_bulk=2, kind="ilike",
                                     filtered_verify=True)
        self._singles(singles, True, result, tick, state)
        return self._ordered(result, targets)

    def _via_bulk(self, caps: Capabilities, targets: list[str], paused: bool,
                  result: SetPausedResult, state: _Run, tick: Progress, **kw: Any
                  ) -> list[str]:
        """Run the bulk path (bulk.py) on the ids a pattern can hold; returns what is left
        for single PATCHes (every target not confirmed at the requested state)."""
        ok = [t for t in targets if DAG_ID_RE.match(t)]
        try:
            _bulk.run(self, caps, ok, paused, result, **kw)
        except Fatal as e:
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
                 tick: Progress, state: _Run) -> None:
        if not ids:
            return
        lock = threading.Lock()

        def one(dag_id: str) -> None:
            if state.fatal:
                err = state.fatal
            else:
                try:
                    err = self._patch_one(dag_id, paused, result)
                except Fatal as e:
                    with lock:
                        state.fatal = state.fatal or str(e)
                    err = str(e)
                except BackendError as e:
                    err = str(e)
                except Exception as e:  # never let one DAG's surprise kill the batch
                    err = self._scrub(one_line(f"{self.name}: PATCH {dag_id}: "
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

    def _patch_one(self, dag_id: str, paused: bool,
                   result: SetPausedResult | None = None) -> str | None:
        """One PATCH; an error line or None. With `result`, the DAG it answers (its row just
        after the write: import errors, staleness) goes into result.read_back for the gate."""
        path = f"/dags/{quote(dag_id, safe='')}"
        resp, data = self._call("PATCH", path, params={"update_mask": "is_paused"},
                                json_body={"is_paused": paused}, allow=(404,))
        if resp.status_code == 404:
            return f"DAG {dag_id} not found in {self.name}"
        if isinstance(data, dict) and "is_paused" in data and bool(data["is_paused"]) != paused:
            return f"{self.name}: PATCH {dag_id} answered is_paused={data['is_paused']}"
        if result is not None and isinstance(data, dict) and dag_field_error(data) is None:
            dag = self._live_dag(data)
            if dag is not None and dag.dag_id == dag_id:
                result.read_back[dag_id] = dag     # one item set: safe across the pool
        return None
