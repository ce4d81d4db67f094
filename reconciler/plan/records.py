"""The plan's vocabulary: str-valued enums for actions and statuses, and typed records for what
a plan does not change (skips, holds, conflicts, missing DAGs) and for its batches.

Enums are `str` subclasses whose str() and format() are their value, so JSON, journals and
every line printed stay byte-identical to the plain strings they replace (and compare equal
to them: a journal read back from disk holds plain strings).
Records are `dict` subclasses with a typed constructor and typed read access: each is exactly
the JSON object the plan schema documents (key order included), so `json.dump`, Airflow's XCom
and the consumers that read `record["why"]` keep working unchanged.
"""

from __future__ import annotations

from enum import Enum


class StrValue(str, Enum):
    """A str-valued enum that prints as its value on every Python from 3.10 (StrEnum is 3.11)."""

    __str__ = str.__str__
    __format__ = str.__format__


class Action(StrValue):
    PAUSE = "pause"
    UNPAUSE = "unpause"

    @classmethod
    def to(cls, paused: bool) -> "Action":
        return cls.PAUSE if paused else cls.UNPAUSE


class ApplyKind(StrValue):
    """What started an apply (kept in its journal)."""

    APPLY = "apply"
    RESTORE = "restore"
    RECOVER = "emergency-recover"


class ApplyStatus(StrValue):
    DONE = "done"
    NOTHING = "nothing"
    ROLLED_BACK = "rolled_back"
    HALTED = "halted"
    FAILED = "failed"


class JournalStatus(StrValue):
    """running -> done | failed | halted | rolling_back -> rolled_back | rollback_failed."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    HALTED = "halted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"


class BatchStatus(StrValue):
    PENDING = "pending"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    GATE_FAILED = "gate_failed"


def _key(name: str) -> property:
    return property(lambda self: self[name], doc=f"the record's {name!r}")


class Record(dict):
    """A plan record: a JSON object with a fixed shape. `of(data)` reads one from plan JSON
    (an unknown or missing key is a TypeError, which a plan loader reports as a bad plan)."""

    __slots__ = ()

    @classmethod
    def of(cls, data: dict) -> "Record":
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__.lower()} entry is not an object")
        return cls(**data)


class Skip(Record):
    """A change the plan would make but refuses (stale, import errors, protected)."""

    __slots__ = ()
    dag_id, why = _key("dag_id"), _key("why")

    def __init__(self, dag_id: str, why: str):
        super().__init__(dag_id=dag_id, why=why)


class Hold(Record):
    """A live state kept although git differs (a manual change held, Airflow's own pause)."""

    __slots__ = ()
    dag_id, why, rule = _key("dag_id"), _key("why"), _key("rule")
    live_paused, desired_paused = _key("live_paused"), _key("desired_paused")

    def __init__(self, dag_id: str, why: str, live_paused: bool, desired_paused: bool,
                 rule: str, auto_paused: dict | None = None, hold: dict | None = None):
        super().__init__(dag_id=dag_id, why=why, live_paused=live_paused,
                         desired_paused=desired_paused, rule=rule)
        if auto_paused is not None:
            self["auto_paused"] = auto_paused
        if hold is not None:            # a `pausectl hold` (policy/holds.py)
            self["hold"] = hold


class Conflict(Record):
    """Rules of one layer and priority that disagree under `tie: error`."""

    __slots__ = ()
    dag_id, rules, message = _key("dag_id"), _key("rules"), _key("message")

    def __init__(self, dag_id: str, rules: list[str], message: str):
        super().__init__(dag_id=dag_id, rules=list(rules), message=message)


class Missing(Record):
    """A DAG a rule (or a snapshot, or the emergency marker) names that Airflow lacks."""

    __slots__ = ()
    dag_id, rule, desired_paused = _key("dag_id"), _key("rule"), _key("desired_paused")

    def __init__(self, dag_id: str, rule: str, desired_paused: bool | None):
        super().__init__(dag_id=dag_id, rule=rule, desired_paused=desired_paused)


class Batch(Record):
    """One step of the rollout: these DAGs, then the health gate."""

    __slots__ = ()
    dag_ids, pause, unpause = _key("dag_ids"), _key("pause"), _key("unpause")

    def __init__(self, dag_ids: list[str], pause: int, unpause: int):
        super().__init__(dag_ids=list(dag_ids), pause=pause, unpause=unpause)


class FrozenList(list):
    """A list a frozen plan hands out: equal to (and serialised as) a list, never changed."""

    __slots__ = ()

    def _frozen(self, *_a, **_k):
        raise TypeError("a frozen plan is not changed; build a new plan instead")

    append = extend = insert = remove = pop = clear = sort = reverse = _frozen
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _frozen
