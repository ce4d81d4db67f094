"""Load the state repo: pausectl.yaml (environments, policy) and <env>.yaml with its includes.

Everything here is validated twice: against the JSON Schema (shape) and semantically (globs,
timestamps, cron, time zones, includes, names). Every error names file:line:col. The values
built are those of state/model.py (re-exported here: `from reconciler.state.loader import
Config` keeps working).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.paths import confine, register_state_root
from reconciler.core.timeutil import (TimeRangeError, check_cron, parse_duration, parse_timestamp,
                                      utcnow, zone)
from reconciler.policy.selectors import Selector, glob_to_regex
from reconciler.state.model import (CONFIG_FILE, DISPLAY_ALIASES, LAYERS, Config, Defaults,
                                    EnvConfig, EnvState, Rule, Window, display_path,
                                    shown_to_path)
from reconciler.state.schema import schema_errors
from reconciler.state.yamlload import LoadedYaml, load_yaml_file

__all__ = ["CONFIG_FILE", "DISPLAY_ALIASES", "LAYERS", "Config", "Defaults", "EnvConfig",
           "EnvState", "Rule", "Window", "display_path", "shown_to_path", "find_root",
           "load_config", "load_env"]

MAX_INCLUDE_DEPTH = 16
DRAIN_DEADLINE = "1h"      # `paused: drain` without drain.deadline


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
                               promote_to=spec.get("promote_to"),
                               status_variable=bool(spec.get("status_variable", False)))
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
                 max_catchup_runs=safety.get("max_catchup_runs"),
                 max_detail_reads=(data.get("impact") or {}).get("max_detail_reads", 50),
                 max_hold_hours=float(safety.get("max_hold_hours", 24)),
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
    drain = None
    if spec["paused"] == "drain" or spec.get("drain") is not None:
        if spec["paused"] is False:
            raise doc.error(path + ("drain",), "drain only applies to a pause (paused: drain "
                                               "or paused: true)")
        try:      # the schema checked the shape; the length is checked here
            drain = parse_duration((spec.get("drain") or {}).get("deadline", DRAIN_DEADLINE))
        except ValueError as e:
            raise doc.error(path + ("drain", "deadline"), str(e)) from None
    return Rule(layer=layer, name=name, paused=spec["paused"] is not False, drain=drain,
                where=doc.where(path),
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
