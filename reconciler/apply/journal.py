"""The apply journal: enough to resume or exactly undo an apply that died anywhere.

Written atomically (temp file + rename) before and after every batch, so a SIGKILL at any point
leaves a journal that names every DAG with its state before the apply and its target.
Setting is_paused is idempotent, which makes replay safe: resume re-applies every batch not
marked applied; rollback sets `before` on every DAG of every batch that was started.
Statuses: running -> done | failed | halted | rolling_back -> rolled_back | rollback_failed.
A journal that is rolling back (or failed to) is only ever rolled back further, never resumed.
Mirrored to the Airflow Variable `pausectl.journal.<env>` when asked, so another machine can
see (and undo) what a dead runner did.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import iso, utcnow
from reconciler.plan.records import ApplyKind, BatchStatus, JournalStatus

JOURNAL_DIR_ENV = "PAUSECTL_JOURNAL_DIR"


def journal_dir() -> Path:
    return Path(os.environ.get(JOURNAL_DIR_ENV) or ".pausectl/journal")


def _checked_dir() -> Path:
    """The journal directory under the output rules (paths.confine): never in .git, never a
    file, not among the state files: inside the state repo only as a hidden directory (the
    default `.pausectl/journal` when the state repo is the working directory). Journal files
    have fresh names, so they never overwrite anything."""
    from reconciler.core.paths import STATE_ROOTS, confine
    d = journal_dir()
    real = os.path.realpath(d)
    hidden = any(real.startswith(r.rstrip(os.sep) + os.sep)
                 and any(p.startswith(".") for p in Path(os.path.relpath(real, r)).parts)
                 for r in STATE_ROOTS)
    return confine(str(d), None, option=JOURNAL_DIR_ENV if os.environ.get(JOURNAL_DIR_ENV)
                   else None, what="journal directory", write=True, expect="dir",
                   force=hidden)


def check_journal_dir() -> None:
    """Fail before an apply takes its lock when its journal could not be written."""
    _checked_dir()


def variable_key(env: str) -> str:
    return f"pausectl.journal.{env}"


@dataclass
class Journal:
    path: Path
    data: dict
    backend: object | None = None    # mirror to an Airflow Variable when set

    @classmethod
    def start(cls, env: str, plan_json: dict, batches: list[list], mirror_backend=None,
              rollout: dict | None = None, emergency: str | None = None,
              kind: ApplyKind = ApplyKind.APPLY) -> "Journal":
        """`batches`: the plan's (Plan.batch_changes()), journaled as they will run."""
        now = utcnow()
        jid = f"{now.strftime('%Y%m%dT%H%M%S%f')}Z-{os.getpid()}"
        changes = sorted((c["dag_id"], c["action"]) for c in plan_json.get("changes", []))
        data = {
            "id": jid, "environment": env, "kind": kind, "status": JournalStatus.RUNNING,
            "started": iso(now),
            "finished": None, "host": socket.gethostname(), "pid": os.getpid(),
            "plan_live_hash": plan_json.get("live_hash"), "plan_generated_at": plan_json.get("generated_at"),
            "plan_hash": "sha256:" + hashlib.sha256(json.dumps(changes).encode()).hexdigest(),
            "desired_ref": plan_json.get("desired_ref"),
            "rollout": rollout or {},          # the effective batches/gate/on_gate_failure
            "emergency": emergency,            # the emergency in force when the apply began
            "mirror": mirror_backend is not None,
            "batches": [{"index": i, "dag_ids": [c.dag_id for c in b],
                         "status": BatchStatus.PENDING, "gate": None}
                        for i, b in enumerate(batches)],
            "dags": {c.dag_id: {"before": c.live_paused, "after": c.desired_paused,
                                "batch": i} for i, b in enumerate(batches) for c in b},
            "events": [],
        }
        j = cls(_checked_dir() / f"{env}-{jid}.json", data, mirror_backend)
        j.save()
        return j

    @classmethod
    def load(cls, path: Path, backend=None) -> "Journal":
        """Read a journal; it keeps mirroring to `backend` if its apply mirrored."""
        from reconciler.core.safejson import loads
        from reconciler.core.paths import confine
        if not path.exists():
            raise PausectlError("journal not found", str(path))
        confine(str(path), None, doc=str(path), what="journal")   # a directory, a FIFO...
        try:
            data = loads(path.read_bytes(), str(path), what="journal")
        except OSError as e:
            raise PausectlError(f"cannot read journal: {e.strerror}", str(path)) from None
        if not isinstance(data, dict) or "dags" not in data or "batches" not in data:
            raise PausectlError("not a pausectl journal", str(path))
        return cls(path, data, backend if data.get("mirror") else None)

    @classmethod
    def latest(cls, env: str, backend=None) -> "Journal":
        """The newest local journal of env, else the one mirrored in Airflow."""
        # ids sort by start time; `-[0-9]` keeps env "prod" from matching "prod-eu" journals
        files = sorted(journal_dir().glob(f"{env}-[0-9]*.json"))
        for f in reversed(files):
            j = cls.load(f, backend)
            if j.data.get("environment") == env:
                return j
        if backend is not None:
            raw = backend.get_variable(variable_key(env))
            if raw:
                from reconciler.core.safejson import loads
                try:
                    data = loads(raw, None, what=f"journal mirror Variable {variable_key(env)}")
                    jid = str(data["id"])
                    if not all(c.isalnum() or c in "-_." for c in jid) or len(jid) > 80:
                        raise ValueError(f"bad journal id {jid[:40]!r}")
                    path = journal_dir() / f"{env}-{jid}.json"
                except (ValueError, KeyError, TypeError) as e:
                    raise PausectlError(f"journal mirror Variable {variable_key(env)} is corrupt "
                                        f"({e})") from None
                return cls(path, data, backend)
        raise PausectlError(f"no journal for {env} in {journal_dir()} "
                            f"(set {JOURNAL_DIR_ENV} or pass --journal FILE)")

    def event(self, text: str) -> None:
        self.data["events"].append({"at": iso(utcnow()), "event": text})

    def save(self) -> None:
        from reconciler.live.snapshot import write_text_atomic
        write_text_atomic(self.path, _dumps(self.data))
        if self.backend is not None:
            try:
                self.backend.set_variable(variable_key(self.data["environment"]),
                                          json.dumps(self.data))
            except PausectlError:
                pass  # the local journal is the source of truth; the mirror is best effort

    def set_batch(self, i: int, status: str, gate: dict | None = None) -> None:
        self.data["batches"][i]["status"] = status
        if gate is not None:
            self.data["batches"][i]["gate"] = gate
        self.event(f"batch {i} {status}")
        self.save()

    def finish(self, status: str) -> None:
        self.data["status"] = status
        self.data["finished"] = iso(utcnow())
        self.event(status)
        self.save()

    @property
    def status(self) -> str:
        return self.data["status"]

    def pending_batches(self) -> list[int]:
        return [b["index"] for b in self.data["batches"] if b["status"] != BatchStatus.APPLIED]

    def started_dags(self) -> dict[str, dict]:
        """DAGs of every batch that was started (applying, applied, gate failed)."""
        started = {b["index"] for b in self.data["batches"] if b["status"] != BatchStatus.PENDING}
        return {d: v for d, v in self.data["dags"].items() if v["batch"] in started}


def _dumps(data: dict) -> str:
    """The journal as JSON, a line per top-level key and per batch or event (the `dags` map
    on one line), by the C encoder: `indent=` makes json use its pure-Python one, 3-4x
    slower on a 1,000-DAG journal, which an apply saves before and after every batch."""
    def value(v) -> str:
        if isinstance(v, list) and v:
            return "[\n" + ",\n".join(f"  {json.dumps(x)}" for x in v) + "\n ]"
        return json.dumps(v)
    return "{\n" + ",\n".join(f" {json.dumps(str(k))}: {value(v)}"
                               for k, v in data.items()) + "\n}\n"
