"""TEST-ONLY hook: die at a named point, to prove the journal survives a SIGKILL anywhere.

`PAUSECTL_TEST_KILLPOINT=name:count` makes the process SIGKILL itself the count-th time it
reaches `killpoint(name)` (count defaults to 1). Unset (always, outside tests) it does nothing.
Points: after_lock, journal_started, batch_begin, batch_marked, dag_set (after each DAG is set),
batch_set, batch_applied, gate_begin, apply_done, rollback_dag.
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("PAUSECTL_TEST_KILLPOINT", "")
_NAME, _, _COUNT = _SPEC.partition(":")
_seen = 0
_lock = threading.Lock()


def killpoint(name: str, n: int = 1) -> None:
    """Reached point `name` (n times at once, e.g. n DAGs set by one bulk call)."""
    global _seen
    if not _SPEC or name != _NAME:
        return
    with _lock:
        _seen += n
        if _seen >= int(_COUNT or 1):
            os.kill(os.getpid(), signal.SIGKILL)
