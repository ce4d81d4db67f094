"""The desired state as values: pausectl.yaml (Config, EnvConfig) and one environment's rules
(EnvState, Rule, Window, Defaults), and how their files are named in messages.

Built by state/loader.py, read by every later stage; nothing here reads a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import window_start_at
from reconciler.policy.selectors import Selector
from reconciler.state.yamlload import LoadedYaml

CONFIG_FILE = "pausectl.yaml"
LAYERS = ("emergency", "dag", "group", "defaults")


@dataclass(frozen=True, slots=True)
class Window:
    cron: str
    duration: timedelta
    timezone: str
    where: str
    budget: str | None = None   # set when the window comes from a named budget

    def start_at(self, at: datetime) -> datetime | None:
        return window_start_at(self.cron, self.duration, self.timezone, at)


@dataclass(slots=True)
class Rule:
    """One pause rule from a state file, with where it came from."""

    layer: str                 # emergency | dag | group | defaults
    name: str                  # dag_id for dag rules, group name, "defaults", "emergency"
    paused: bool
    where: str                 # file:line of the rule
    reason: str | None = None
    owner: str | None = None
    ticket: str | None = None
    until: datetime | None = None
    from_: datetime | None = None
    windows: tuple[Window, ...] = ()
    priority: int = 0
    selector: Selector | None = None   # groups only
    depth: int = 0             # 0: the environment file, 1+: included files (nearer wins)
    cascade: str = "none"
    promote: bool = False
    budget: str | None = None
    raw: dict | None = None    # the mapping as written (for promote/export)
    origin: "Rule | None" = None   # cascade: the rule whose pause this one follows
    chain: tuple = ()          # cascade: ((dag_id, via), ...) from the origin's DAG to this one
    drain: timedelta | None = None   # `paused: drain`: pause once no run is in flight, by then

    def inactive_reason(self, at: datetime) -> str | None:
        """None when the rule is in force at `at`, else why not."""
        if self.until is not None and at >= self.until:
            return f"expired (until {self.until.isoformat()})"
        if self.from_ is not None and at < self.from_:
            return f"not yet in force (from {self.from_.isoformat()})"
        if self.windows and not any(w.start_at(at) for w in self.windows):
            if self.budget and all(w.budget for w in self.windows):
                return f"outside budget {self.budget!r}"
            if self.budget:
                return f"outside its maintenance windows and budget {self.budget!r}"
            return "outside its maintenance windows"
        return None

    def label(self) -> str:
        if self.origin is not None:
            return f"cascade of {self.origin.label()}"
        if self.layer == "dag":
            return f"dag entry {self.name}"
        if self.layer == "group":
            return f"group {self.name}"
        return self.layer


@dataclass
class Defaults:
    unmanaged: str = "report"     # report | ignore | pause | unpause
    reason: str | None = None
    owner: str | None = None
    where: str = ""


@dataclass
class EnvState:
    """The desired state of one environment: its rules, from its file and includes."""

    name: str
    file: str                           # relative to the state repo
    files: list[str] = field(default_factory=list)  # every file read, includes too
    dag_rules: dict[str, list[Rule]] = field(default_factory=dict)  # dag_id -> rules
    groups: list[Rule] = field(default_factory=list)
    defaults: Defaults = field(default_factory=Defaults)
    protect: list[str] = field(default_factory=list)
    sensors: dict[str, list[str]] = field(default_factory=dict)
    lint: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def all_rules(self) -> list[Rule]:
        return [r for rules in self.dag_rules.values() for r in rules] + self.groups


@dataclass
class EnvConfig:
    name: str
    backend: dict
    file: str
    where: str
    rollout: dict = field(default_factory=dict)
    promote_to: str | None = None
    # write the status document (pausectl.status.<env>, for the Airflow plugin) after every
    # plan/apply/drift/watch tick through this environment's live backend
    status_variable: bool = False


@dataclass
class Config:
    """pausectl.yaml."""

    root: Path
    environments: dict[str, EnvConfig]
    layers: tuple[str, ...] = LAYERS
    tie: str = "pause"
    drift_mode: str = "enforce"
    hold_manual_hours: float = 0.0
    auto_paused: str = "keep"          # drift.auto_paused: keep | enforce (autopause.py)
    rollout: dict = field(default_factory=dict)
    max_changes: int | None = None
    max_catchup_runs: int | None = None   # safety.max_catchup_runs: the apply guard (impact.py)
    max_detail_reads: int = 50           # impact.max_detail_reads: details per plan (impact.py)
    max_hold_hours: float = 24.0       # safety.max_hold_hours: the longest `pausectl hold`
    protect: list[str] = field(default_factory=list)
    tenants: dict = field(default_factory=dict)
    notify: dict = field(default_factory=dict)
    promotion: dict = field(default_factory=dict)
    lint: dict = field(default_factory=dict)
    budgets: dict[str, tuple[Window, ...]] = field(default_factory=dict)
    doc: LoadedYaml | None = None

    def env(self, name: str) -> EnvConfig:
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            line, col = self.doc.mark(("environments",)) if self.doc else (None, None)
            raise PausectlError(f"unknown environment {name!r} (known: {known})",
                                self.rel(self.root / CONFIG_FILE), line, col)
        return self.environments[name]

    def rollout_for(self, env: str) -> dict:
        merged = dict(self.rollout)
        merged.update(self.environments[env].rollout or {})
        return merged

    def rel(self, path: Path) -> str:
        return display_path(self.root, path)


# A state repo materialised from a git ref (gitstate.checkout_ref) lives in a temp dir; its
# files are named as in the working tree: {temp state dir: shown state dir}.
DISPLAY_ALIASES: dict[str, str] = {}


def display_path(root: Path, path: Path) -> str:
    """How a file is named in messages: relative to the working directory when inside it."""
    if DISPLAY_ALIASES and path.is_absolute():
        text = str(path)
        for real, shown in DISPLAY_ALIASES.items():
            if text.startswith(real + os.sep):
                return os.path.join(shown, text[len(real) + 1:])
    try:
        return os.path.relpath(path, Path.cwd()) if path.is_absolute() else str(path)
    except ValueError:  # pragma: no cover (different drive on Windows)
        return str(path)


def shown_to_path(shown: str) -> Path:
    """The inverse of display_path: a file as named in messages -> the file to read (with
    --ref, inside the materialised tree, never the work tree's file of that name)."""
    for real, alias in DISPLAY_ALIASES.items():
        prefix = os.path.normpath(alias) + os.sep
        if os.path.normpath(shown).startswith(prefix):
            return Path(real) / os.path.normpath(shown)[len(prefix):]
    return Path(shown)
