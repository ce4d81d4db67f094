"""Airflow's own pauses: `drift.auto_paused: keep | enforce`.

Airflow 2.9+ pauses a DAG by itself after `max_consecutive_failed_dag_runs` failed runs in a
row (the scheduler writes `Log(event="paused", owner="scheduler")`; backends report it as an
AuditEvent with `via="airflow"`). Unpausing such a DAG because git says "running" would restart
something Airflow stopped for failing, so by default (`keep`) pausectl holds it paused until a
human acts:

- a git change to the rule that decides the DAG, committed after the auto-pause (the newest
  commit time of the rule's lines, from `git blame`; uncommitted edits do not count);
- `drift.auto_paused: enforce` (then it is unpaused like any drift, still reported as such);
- someone unpauses it in Airflow (then it simply runs: nothing differs from git).

A DAG counts as auto-paused while it is paused and the newest pause event of its event log is
Airflow's own (a later pause or unpause by a human, the CLI or pausectl takes it over). The
failed runs just before the event are its evidence (`backend.dag_runs`), so messages say
"auto-paused by Airflow after N failed runs".
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from reconciler.live.base import AuditEvent, DagRun, LiveDag
from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import iso

AUTO_VIA = "airflow"
POLICIES = ("keep", "enforce")
RUNS_READ = 25          # runs read per auto-paused DAG (the scheduler's limit is rarely more)
SHOWN_RUNS = 3


def is_auto_pause(event: AuditEvent | None) -> bool:
    return event is not None and event.via == AUTO_VIA and event.is_paused is not False


def failed_before(runs: list[DagRun], when: datetime) -> list[DagRun]:
    """The failed runs in a row, newest first, among the runs that began before `when`: the
    runs the scheduler counted (it pauses when its newest N runs by run_after all failed)."""
    def began(r: DagRun):
        return r.run_after or r.start_date

    earlier = [r for r in runs if began(r) is None or began(r) <= when]
    earlier.sort(key=lambda r: began(r) or when, reverse=True)
    streak = []
    for r in earlier:
        if r.state != "failed":
            break
        streak.append(r)
    return streak


@dataclass(frozen=True)
class RuleChange:
    """The newest committed change of a rule's lines."""

    when: datetime
    commit: str


@dataclass
class AutoPause:
    """One DAG that Airflow paused by itself, and what pausectl knows about it."""

    dag_id: str
    event: AuditEvent
    failed: list[DagRun] = field(default_factory=list)
    rule_change: RuleChange | None = None    # of the rule that decides the DAG now
    notes: list[str] = field(default_factory=list)   # why something is unknown

    @property
    def changed_after(self) -> bool:
        """A human committed a change to the deciding rule after Airflow paused the DAG."""
        return self.rule_change is not None and self.rule_change.when > self.event.when

    def reason(self) -> str:
        n = len(self.failed)
        if n:
            return f"auto-paused by Airflow after {n} failed run{'s' if n != 1 else ''}"
        return "auto-paused by Airflow (no failed run before it is listed any more)"

    def summary(self) -> str:
        text = f"{self.reason()} at {iso(self.event.when)}"
        if self.failed:
            ids = ", ".join(r.run_id for r in self.failed[:SHOWN_RUNS])
            more = len(self.failed) - SHOWN_RUNS
            text += f" ({ids}{f', +{more} more' if more > 0 else ''})"
        return text

    def hold_text(self, rule) -> str:
        """What keeps it paused and what releases it (the plan's held reason, after summary)."""
        where = f"{rule.label()} ({rule.where})" if rule is not None else "a rule"
        text = (f"held paused (drift.auto_paused: keep) until a human acts: commit a change "
                f"to {where}, set drift.auto_paused: enforce, or unpause it in Airflow")
        if self.rule_change is not None:
            text += (f"; the rule last changed at {iso(self.rule_change.when)} "
                     f"({self.rule_change.commit[:10]}), before the auto-pause")
        return text + "".join(f"; {n}" for n in self.notes)

    def release_text(self) -> str:
        if self.changed_after:
            return (f"released by a git change to its rule at {iso(self.rule_change.when)} "
                    f"({self.rule_change.commit[:10]})")
        return "unpaused because drift.auto_paused is enforce"

    def held_why(self, rule) -> str:
        return f"{self.summary()}; {self.hold_text(rule)}"

    def released_why(self) -> str:
        return f"{self.summary()}; {self.release_text()}"

    def to_json(self, policy: str, outcome: str) -> dict:
        """outcome: held | released (a git change after it) | enforced (policy enforce)."""
        return {
            "when": iso(self.event.when), "by": self.event.user, "policy": policy,
            "outcome": outcome, "reason": self.reason(), "failed_runs": len(self.failed),
            "runs": [{"run_id": r.run_id, "state": r.state,
                      "run_after": iso(r.run_after) if r.run_after else None,
                      "end_date": iso(r.end_date) if r.end_date else None}
                     for r in self.failed],
            "rule_changed_at": iso(self.rule_change.when) if self.rule_change else None,
            "rule_commit": self.rule_change.commit if self.rule_change else None,
            "notes": list(self.notes),
        }


def outcome(ap: AutoPause, policy: str) -> str:
    if ap.changed_after:
        return "released"
    return "enforced" if policy == "enforce" else "held"


def detect(backend, live: list[LiveDag], resolution, last: dict[str, AuditEvent],
           desired_ref: str | None = None, history: "RuleHistory | None" = None
           ) -> dict[str, AutoPause]:
    """DAGs git wants running that Airflow auto-paused (`last`: the newest event per DAG is
    Airflow's own)."""
    decisions = resolution.decisions
    out: dict[str, AutoPause] = {}
    if not last:          # no event read: nothing Airflow paused (no per-DAG pass over 100k)
        return out
    history = history or RuleHistory(rev_of(desired_ref))    # one blame per file for all
    for dag in live:
        ev = last.get(dag.dag_id)
        dec = decisions.get(dag.dag_id)
        if not dag.is_paused or not is_auto_pause(ev) or dec is None or dec.paused is not False:
            continue
        out[dag.dag_id] = examine(backend, dag.dag_id, ev, dec.rule,
                                  resolution.resolver.ended_rule, desired_ref, history)
    return out


def examine(backend, dag_id: str, event: AuditEvent, rule, ended_rule=None,
            desired_ref: str | None = None, history: "RuleHistory | None" = None,
            runs: list[DagRun] | None = None) -> AutoPause:
    """The evidence (failed runs) and the rule's git history for one auto-paused DAG."""
    ap = AutoPause(dag_id, event)
    if runs is None:
        try:
            runs = backend.dag_runs(dag_id, limit=RUNS_READ)
        except PausectlError as e:   # evidence only: the hold does not depend on it
            ap.notes.append(f"runs not read: {e}")
            runs = []
    ap.failed = failed_before(runs, event.when)
    if rule is None or rule is ended_rule or not rule.where:
        ap.notes.append("no rule in git decides it now (every rule matching it has ended); "
                        "add one to release it through git")
        return ap
    history = history or RuleHistory(rev_of(desired_ref))
    ap.rule_change, note = history.changed(rule.where)
    if note:
        ap.notes.append(note)
    return ap


def rev_of(desired_ref: str | None) -> str | None:
    """The commit of a plan's `desired_ref` ("main@3f2c1ab0..." or a bare sha), else None."""
    if not desired_ref:
        return None
    rev = desired_ref.rpartition("@")[2]
    return rev if re.fullmatch(r"[0-9a-f]{7,40}", rev) else None


# ---- when a rule last changed, from git blame -----------------------------------------------

@dataclass
class _Line:
    commit: str
    when: datetime | None         # None: unknown (uncommitted, or the edge of a shallow clone)
    text: str
    uncommitted: bool = False


class RuleHistory:
    """Newest commit time of a rule's lines (its `file:line` and the block under it), by
    `git blame` of the working tree, or of `rev` for a plan of a git ref. One blame per file."""

    def __init__(self, rev: str | None = None):
        self.rev = rev
        self._files: dict[str, tuple[list[_Line] | None, str | None]] = {}

    def changed(self, where: str) -> tuple[RuleChange | None, str | None]:
        """(newest committed change, None) or (None | older change, why it is unknown)."""
        file, _, num = where.rpartition(":")
        if not file or not num.isdigit():
            return None, None
        lines, note = self._blame(file)
        if lines is None:
            return None, note
        block = _block(lines, int(num))
        known = [ln for ln in block if ln.when is not None]
        newest = max(known, key=lambda ln: ln.when, default=None)
        change = RuleChange(newest.when, newest.commit) if newest else None
        if any(ln.uncommitted for ln in block):
            return change, "its uncommitted edits do not count until they are committed"
        if len(known) < len(block):
            return change, ("the git clone is shallow, so when the rule last changed is not "
                            "known (fetch the full history, e.g. actions/checkout fetch-depth: 0)")
        return change, None

    def _blame(self, file: str) -> tuple[list[_Line] | None, str | None]:
        if file not in self._files:
            self._files[file] = _blame(Path(file), self.rev)
        return self._files[file]


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
                              errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _blame(path: Path, rev: str | None) -> tuple[list[_Line] | None, str | None]:
    unknown = "the state repo has no git history here, so a change to the rule cannot be seen"
    path = path.absolute()
    cwd = path.parent
    while not cwd.is_dir() and cwd != cwd.parent:
        cwd = cwd.parent
    args = ["blame", "--line-porcelain"]
    if rev:
        from reconciler.state.gitref import check_ref
        args.append(check_ref(rev))
    out = _git(cwd, *args, "--", os.path.relpath(path, cwd))
    if out is None or out.returncode != 0:
        return None, unknown
    shallow = _git(cwd, "rev-parse", "--is-shallow-repository")
    is_shallow = shallow is not None and shallow.stdout.strip() == "true"
    lines: list[_Line] = []
    commit, when, boundary = "", None, False
    for text in out.stdout.split("\n"):
        if text.startswith("\t"):
            zero = set(commit) == {"0"}
            known = None if zero or (boundary and is_shallow) else when
            lines.append(_Line(commit, known, text[1:], uncommitted=zero))
            continue
        head = text.split(" ")
        if len(head) >= 3 and len(head[0]) == 40 and head[1].isdigit():
            commit, when, boundary = head[0], None, False
        elif head[0] == "committer-time" and len(head) > 1 and head[1].isdigit():
            when = datetime.fromtimestamp(int(head[1]), timezone.utc)
        elif head[0] == "boundary":
            boundary = True
    return lines, None


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _block(lines: list[_Line], start: int) -> list[_Line]:
    """The content lines of the YAML node that begins on line `start` (1-based): that line and
    every deeper-indented line after it (comments and blank lines are not the rule)."""
    if not 1 <= start <= len(lines):
        return []
    first = lines[start - 1]
    indent = _indent(first.text)
    item_key = not first.text.lstrip().startswith("-") and start >= 2 and \
        lines[start - 2].text.strip() == "-"
    out = [first]
    for ln in lines[start:]:
        stripped = ln.text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        i = _indent(ln.text)
        if i < indent or (i == indent and not item_key):
            break
        out.append(ln)
    return out
