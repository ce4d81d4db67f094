"""lint's vocabulary: the rules, a finding, the settings (`lint:` in pausectl.yaml and in
state files), and the Lint run every rule family adds its findings to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from reconciler.core.timeutil import iso
from reconciler.state.loader import CONFIG_FILE, Config, EnvState

SEVERITIES = ("error", "warning", "info")
RULES = {
    # id: (default severity, fix hint)
    "forgotten-pause": ("warning", "add `until:` (when should it end?) or remove the pause; "
                                   "a permanent pause deserves a ticket and a review date"),
    "missing-reason": ("warning", "write down why (`reason:`) and who decides (`owner:`)"),
    "missing-ticket": ("info", "link the pause to a ticket (`ticket: ABC-123`)"),
    "delete-candidate": ("warning", "the DAG does nothing: delete its file (and the rule) "
                                    "instead of keeping it paused"),
    "unknown-live-pause": ("warning", "add a dag entry with paused, reason and owner to git, "
                                      "or unpause it (`pausectl plan` reverts unknown changes "
                                      "only for managed DAGs)"),
    "pause-after-failure": ("warning", "pausing hides failures: fix the DAG (or its retries and "
                                       "alerts); if it must stay paused, put it in git with a "
                                       "reason and a ticket"),
    "expired-until": ("warning", "remove the expired rule, or extend `until`"),
    "matches-nothing": ("warning", "remove the rule, or fix its dag_id/match"),
    "auto-paused": ("warning", "fix the failing task, then unpause the DAG in Airflow; if it "
                               "should stay off, pause it in git with a reason and a ticket"),
    "renewed-hold": ("warning", "a hold renewed again and again is a pause: put it in git with "
                                "a reason, an owner and a ticket, then `pausectl hold ENV "
                                "--release DAG`"),
}
DEFAULTS = {"forgotten_pause_days": 30, "no_runs_days": 90, "failure_window_hours": 24,
            "max_hold_renewals": 2}
PLACEHOLDER = re.compile(r"^\s*(todo|tbd|tbc|n/?a|none|null|unknown|nobody|wip|temp|tmp|test|"
                         r"fixme|xxx|asdf|\?+|-+|\.+)\s*[.!]*\s*$", re.I)


@dataclass
class Finding:
    id: str
    severity: str
    message: str
    fix: str
    file: str | None = None
    line: int | None = None
    dag_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "severity": self.severity, "message": self.message,
                "fix": self.fix, "file": self.file, "line": self.line, "dag_ids": self.dag_ids}


@dataclass
class LintResult:
    environment: str
    at: datetime
    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def to_json(self) -> dict:
        return {"environment": self.environment, "at": iso(self.at),
                "summary": self.counts(), "findings": [f.to_json() for f in self.findings],
                "skipped": self.skipped}


def split_where(where: str) -> tuple[str | None, int | None]:
    file, _, line = where.rpartition(":")
    return (file or None), (int(line) if line.isdigit() else None)


def check_ids(ids, doc, path: tuple) -> None:
    for i, rid in enumerate(ids or ()):
        if rid not in RULES:
            raise doc.error(path + (i,), f"unknown lint rule {rid!r} (known: "
                                         f"{', '.join(sorted(RULES))})")


def _file_settings(state: EnvState) -> dict[str, dict]:
    """Per state file (as named in `where`): its `lint:` mapping."""
    from reconciler.state.yamlload import load_yaml_file
    out = {}
    for f in state.files:
        doc = load_yaml_file(Path(f), f)
        lint = (doc.data or {}).get("lint") if isinstance(doc.data, dict) else None
        if lint:
            check_ids(lint.get("disable"), doc, ("lint", "disable"))
            for key in lint:
                if key != "disable":
                    raise doc.error(("lint", key), f"lint.{key} belongs in {CONFIG_FILE}; a "
                                                   "state file may only `disable` lint rules")
        out[f] = lint or {}
    return out


class Settings:
    def __init__(self, cfg: Config, state: EnvState):
        conf = dict(cfg.lint or {})
        if cfg.doc is not None:
            check_ids(conf.get("disable"), cfg.doc, ("lint", "disable"))
            for rid in (conf.get("severity") or {}):
                if rid not in RULES:
                    raise cfg.doc.error(("lint", "severity", rid), f"unknown lint rule {rid!r}")
        self.disabled = set(conf.get("disable") or ())
        self.severity = {rid: (conf.get("severity") or {}).get(rid, sev)
                         for rid, (sev, _) in RULES.items()}
        self.values = {k: conf.get(k, v) for k, v in DEFAULTS.items()}
        self.per_file = _file_settings(state)
        self.env_file = state.files[0] if state.files else None

    def enabled(self, rid: str, file: str | None) -> bool:
        if rid in self.disabled:
            return False
        f = file if file in self.per_file else self.env_file
        return rid not in set((self.per_file.get(f) or {}).get("disable") or ())


class Lint:
    """One lint run: its inputs (one observation's DAGs, resolution and events), its settings,
    and `add`, which drops what a file's or the config's `disable` silences."""

    def __init__(self, cfg: Config, state: EnvState, live, res, backend, at: datetime,
                 ages, events=None):
        from reconciler.live.snapshot import SnapshotBackend
        self.cfg, self.state, self.live, self.res = cfg, state, live, res
        self.backend, self.at, self.ages = backend, at, ages
        self.st = Settings(cfg, state)
        self.result = LintResult(state.name, at)
        self.offline = isinstance(backend, SnapshotBackend)
        self.by_id = {d.dag_id: d for d in live}
        self._events = None if events is None else list(events)
        self._last_pauses = None

    def add(self, rid: str, message: str, where: str | None = None, dag_ids=()) -> None:
        file, line = split_where(where) if where else (None, None)
        if not self.st.enabled(rid, file):
            return
        self.result.findings.append(Finding(rid, self.st.severity[rid], message, RULES[rid][1],
                                            file, line, sorted(dag_ids)))

    def audit_events(self, dag_ids: list[str]) -> list:
        """Audit events of `dag_ids`: from the observation when it read them, else the backend."""
        if self._events is None:
            return self.backend.audit_events(dag_ids)
        wanted = set(dag_ids)
        return [e for e in self._events if e.dag_id in wanted]

    def last_pauses(self) -> dict:
        """The newest pause event (is_paused true) per paused DAG, read once."""
        if self._last_pauses is None:
            paused = [d.dag_id for d in self.live if d.is_paused]
            out = {}
            for e in (self.audit_events(paused) if paused else ()):
                if e.dag_id and e.dag_id not in out and e.is_paused is True:
                    out[e.dag_id] = e
            self._last_pauses = out
        return self._last_pauses
