"""Load the state repo: pausectl.yaml (environments, policy) and <env>.yaml with its includes.

Everything here is validated twice: against the JSON Schema (shape) and semantically (globs,
timestamps, cron, time zones, includes, names). Every error names file:line:col.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.paths import confine, register_state_root
from reconciler.state.schema import schema_errors
from reconciler.policy.selectors import Selector
from reconciler.core.timeutil import (TimeRangeError, check_cron, parse_duration, parse_timestamp, utcnow,
                       window_start_at, zone)
from reconciler.state.yamlload import LoadedYaml, load_yaml_file

CONFIG_FILE = "pausectl.yaml"
LAYERS = ("emergency", "dag", "group", "defaults")
MAX_INCLUDE_DEPTH = 16


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


def find_root(state: str | os.PathLike | None) -> Path:
    root = Path(state) if state else Path("state")
    if not root.is_dir():
        raise PausectlError(f"state repo {str(root)!r} not found (run from the directory holding "
                            "./state or pass --state DIR)")
    if not (root / CONFIG_FILE).is_file():
        raise PausectlError(f"{CONFIG_FILE} not found in state repo", str(root))
    return root


def _raise_first(errors: list[PausectlError]) -> None:
    if errors:
        raise errors[0]


def load_config(root: Path) -> Config:
    path = root / CONFIG_FILE
    shown = display_path(root, path)
    register_state_root(root)
    doc = load_yaml_file(confine(CONFIG_FILE, root, doc=shown), shown)
    if not isinstance(doc.data, dict):
        raise doc.error((), f"{CONFIG_FILE} must be a mapping with 'environments'")
    _raise_first(schema_errors(doc, "pausectl.schema.json"))
    data = doc.data
    envs = {}
    for name, spec in data["environments"].items():
        envs[name] = EnvConfig(name=name, backend=spec["backend"],
                               file=spec.get("file", f"{name}.yaml"),
                               where=doc.where(("environments", name)),
                               rollout=spec.get("rollout") or {},
                               promote_to=spec.get("promote_to"))
    for name, e in envs.items():
        if e.promote_to and e.promote_to not in envs:
            raise doc.error(("environments", name, "promote_to"),
                            f"promote_to names unknown environment {e.promote_to!r}")
    prec = data.get("precedence") or {}
    drift = data.get("drift") or {}
    safety = data.get("safety") or {}
    cfg = Config(root=root, environments=envs,
                 layers=tuple(prec.get("layers") or LAYERS), tie=prec.get("tie", "pause"),
                 drift_mode=drift.get("mode", "enforce"),
                 hold_manual_hours=float(drift.get("hold_manual_hours", 0)),
                 auto_paused=drift.get("auto_paused", "keep"),
                 rollout=data.get("rollout") or {}, max_changes=safety.get("max_changes"),
                 protect=list(safety.get("protect") or []), tenants=data.get("tenants") or {},
                 notify=data.get("notify") or {}, promotion=data.get("promotion") or {},
                 lint=data.get("lint") or {}, doc=doc)
    for bname, b in (data.get("budgets") or {}).items():
        cfg.budgets[bname] = tuple(Window(w.cron, w.duration, w.timezone, w.where, bname)
                                   for w in _windows(doc, ("budgets", bname, "windows"),
                                                     b["windows"]))
    for i, pattern in enumerate(cfg.protect):
        _check_glob(doc, ("safety", "protect", i), pattern)
    for tname, t in cfg.tenants.items():
        _selector(doc, ("tenants", tname, "match"), t["match"])
        for j, other in enumerate(t.get("allow") or []):
            if other not in cfg.tenants:
                raise doc.error(("tenants", tname, "allow", j), f"unknown tenant {other!r}")
    canary = (cfg.rollout.get("canary") or {})
    if canary:
        _selector(doc, ("rollout", "canary"), {k: v for k, v in canary.items() if k != "dags"})
    return cfg


def _check_glob(doc: LoadedYaml, path: tuple, pattern: str) -> None:
    from reconciler.policy.selectors import glob_to_regex
    try:
        glob_to_regex(pattern)
    except ValueError as e:
        raise doc.error(path, str(e)) from None


def _selector(doc: LoadedYaml, path: tuple, spec: dict) -> Selector:
    try:
        return Selector.from_spec(spec)
    except ValueError as e:
        ids = spec.get("dag_id")
        sub = path + ("dag_id",)
        if isinstance(ids, list):
            for i, g in enumerate(ids):
                try:
                    from reconciler.policy.selectors import glob_to_regex
                    glob_to_regex(g)
                except ValueError:
                    sub = sub + (i,)
                    break
        raise doc.error(sub, str(e)) from None


def _timestamp(doc: LoadedYaml, path: tuple, value) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(str(value))
    except TimeRangeError as e:
        raise doc.error(path, str(e)) from None
    except ValueError:
        raise doc.error(path, f"bad timestamp {value!r} (use ISO 8601, e.g. 2026-12-01T00:00:00Z)") from None


def _windows(doc: LoadedYaml, path: tuple, specs) -> tuple[Window, ...]:
    out = []
    for i, w in enumerate(specs or ()):
        p = path + (i,)
        try:
            check_cron(w["cron"])
        except ValueError as e:
            raise doc.error(p + ("cron",), str(e)) from None
        try:
            duration = parse_duration(w["duration"])
        except ValueError as e:
            raise doc.error(p + ("duration",), str(e)) from None
        tz = w.get("timezone", "UTC")
        try:
            zone(tz)
        except ValueError as e:
            raise doc.error(p + ("timezone",), str(e)) from None
        out.append(Window(w["cron"], duration, tz, doc.where(p)))
    return tuple(out)


def _rule(doc: LoadedYaml, path: tuple, spec: dict, layer: str, name: str, depth: int,
          now: datetime, warnings: list[str], budgets: dict | None = None) -> Rule:
    until = _timestamp(doc, path + ("until",), spec.get("until"))
    from_ = _timestamp(doc, path + ("from",), spec.get("from"))
    if until and from_ and from_ >= until:
        raise doc.error(path + ("from",), "'from' must be before 'until'")
    if until and until <= now:
        warnings.append(f"{doc.where(path + ('until',))}: {layer} rule {name!r} expired at "
                        f"{spec.get('until')} (remove it, or extend 'until')")
    windows = _windows(doc, path + ("windows",), spec.get("windows"))
    budget = spec.get("budget")
    if budget is not None:
        if budget not in (budgets or {}):
            known = ", ".join(sorted(budgets or {})) or "none defined"
            raise doc.error(path + ("budget",), f"unknown budget {budget!r} (pausectl.yaml "
                                                f"budgets: {known})")
        windows = windows + budgets[budget]
    return Rule(layer=layer, name=name, paused=spec["paused"], where=doc.where(path),
                reason=spec.get("reason"), owner=spec.get("owner"), ticket=spec.get("ticket"),
                until=until, from_=from_, windows=windows,
                priority=spec.get("priority", 0), depth=depth,
                cascade=spec.get("cascade", "none"), promote=bool(spec.get("promote", False)),
                budget=spec.get("budget"), raw=spec)


def load_env(cfg: Config, env: str, now: datetime | None = None) -> EnvState:
    """The desired state of `env`: its file plus includes, validated."""
    ec = cfg.env(env)
    now = now or utcnow()
    root = cfg.root.resolve()
    path = (cfg.root / ec.file)
    state = EnvState(name=env, file=ec.file)
    group_names: dict[str, str] = {}
    _load_state_file(cfg, root, path, state, depth=0, stack=(), now=now,
                     group_names=group_names, where_included=None)
    return state


def _resolve_include(cfg: Config, root: Path, including: Path, inc: str, doc: LoadedYaml,
                     p: tuple) -> tuple[Path, Path]:
    """(the include as named, for messages; its confined real path, to read)."""
    real = confine(inc, root, base=including.parent, doc=doc, at=p, what="include")
    return including.parent / inc, real


def _load_state_file(cfg: Config, root: Path, path: Path, state: EnvState, depth: int,
                     stack: tuple, now: datetime, group_names: dict[str, str],
                     where_included: tuple[LoadedYaml, tuple] | None,
                     real: Path | None = None) -> None:
    shown = cfg.rel(path)
    if where_included is None:
        ec = cfg.environments[state.name]
        at = ("environments", state.name) + (("file",) if "file" in _env_spec(cfg, ec) else ())
        resolved = confine(ec.file, root, doc=cfg.doc, at=at,
                           what=f"state file of environment {state.name!r}")
    else:
        resolved = real
    doc = load_yaml_file(resolved, shown)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise doc.error((), "a state file must be a mapping (environment, dags, groups, ...)")
    _raise_first(schema_errors(doc, "state.schema.json"))
    data = doc.data
    state.files.append(shown)
    if depth == 0:
        if "environment" not in data:
            raise doc.error((), f"missing required key 'environment' (expected {state.name!r})")
        if data["environment"] != state.name:
            raise doc.error(("environment",), f"file is for environment {data['environment']!r}, "
                                              f"but pausectl.yaml maps it to {state.name!r}")
    elif "environment" in data and data["environment"] != state.name:
        raise doc.error(("environment",), f"included file is for environment "
                                          f"{data['environment']!r}, not {state.name!r}")
    if depth == 0 or "defaults" in data:
        if depth > 0 and "defaults" in data:
            raise doc.error(("defaults",), "defaults belong in the environment file, not in an include")
        d = data.get("defaults") or {}
        state.defaults = Defaults(unmanaged=d.get("unmanaged", "report"), reason=d.get("reason"),
                                  owner=d.get("owner"), where=doc.where(("defaults",)))
    for dag_id, spec in (data.get("dags") or {}).items():
        state.dag_rules.setdefault(dag_id, []).append(
            _rule(doc, ("dags", dag_id), spec, "dag", dag_id, depth, now, state.warnings,
                  cfg.budgets))
    for i, g in enumerate(data.get("groups") or []):
        p = ("groups", i)
        if g["name"] in group_names:
            raise doc.error(p + ("name",), f"duplicate group name {g['name']!r} "
                                            f"(also at {group_names[g['name']]})")
        group_names[g["name"]] = doc.where(p)
        rule = _rule(doc, p, g, "group", g["name"], depth, now, state.warnings, cfg.budgets)
        rule.selector = _selector(doc, p + ("match",), g["match"])
        state.groups.append(rule)
    for i, pattern in enumerate(data.get("protect") or []):
        _check_glob(doc, ("protect", i), pattern)
        state.protect.append(pattern)
    for dag_id, waiters in (data.get("sensors") or {}).items():
        state.sensors.setdefault(dag_id, []).extend(waiters)
    if data.get("lint"):
        state.lint.update(data["lint"])
    if depth >= MAX_INCLUDE_DEPTH and data.get("include"):
        raise doc.error(("include",), f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
    for i, inc in enumerate(data.get("include") or []):
        p = ("include", i)
        target, tr = _resolve_include(cfg, root, path, inc, doc, p)
        if tr == resolved or tr in stack:
            # from where the cycle starts: the same message whichever environment reached it
            loop = stack[stack.index(tr):] if tr in stack else ()
            chain = " -> ".join([cfg.rel(Path(s)) for s in loop] + [shown, cfg.rel(target)])
            raise doc.error(p, f"include cycle: {chain}")
        _load_state_file(cfg, root, target, state, depth + 1, stack + (resolved,), now,
                         group_names, (doc, p), real=tr)


def _env_spec(cfg: Config, ec: EnvConfig) -> dict:
    envs = (cfg.doc.data or {}).get("environments") if cfg.doc is not None else None
    return (envs or {}).get(ec.name) or {}
