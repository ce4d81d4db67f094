"""`pausectl validate`: schema and semantic checks of the whole state repo (or some files).

It lives in operate/, not state/: besides the files it reads the environments whose live state
is a snapshot (rules matching no DAG, rules crossing tenants), so it sits above state, policy
and live, and state stays the bottom layer.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import utcnow
from reconciler.engine import open_backend
from reconciler.policy.tenants import config_problems, violations
from reconciler.state.loader import load_config, load_env
from reconciler.state.model import CONFIG_FILE, Config, shown_to_path
from reconciler.state.schema import schema_errors
from reconciler.state.yamlload import load_yaml_file


def _problem(e: PausectlError, severity: str = "error", rid: str | None = None) -> dict:
    p = {"severity": severity, "file": e.file, "line": e.line, "col": e.col, "message": e.message}
    if rid:
        p["id"] = rid
    return p


def _warning(text: str) -> dict:
    # warnings from loading are "file:line: message"
    loc, _, msg = text.partition(": ")
    file, _, line = loc.rpartition(":")
    if file and line.isdigit():
        return {"severity": "warning", "file": file, "line": int(line), "col": None, "message": msg}
    return {"severity": "warning", "file": None, "line": None, "col": None, "message": text}


def validate_repo(root: Path, paths: list[str] | None = None) -> list[dict]:
    problems: list[dict] = []
    seen: set = set()

    def add(p: dict) -> None:
        key = (p["file"], p["line"], p["col"], p["message"])
        if key not in seen:
            seen.add(key)
            problems.append(p)

    try:
        cfg = load_config(root)
    except PausectlError as e:
        add(_problem(e))
        cfg_doc = _try_doc(root / CONFIG_FILE, root)
        if cfg_doc is not None:
            for err in schema_errors(cfg_doc, "pausectl.schema.json"):
                add(_problem(err))
        return problems

    for e in config_problems(cfg):
        add(_problem(e, e.severity))
    wanted = None
    if paths:
        wanted = {_real(p) for p in paths}
        for p in wanted:
            if not p.exists():
                add(_problem(PausectlError("file not found", os.path.relpath(p))))
    now = utcnow()
    for env in sorted(cfg.environments):
        ec = cfg.environments[env]
        env_files = {_real(cfg.root / ec.file)}
        try:
            state = load_env(cfg, env, now=now)
            env_files |= {_real(f) for f in state.files}
        except PausectlError as e:
            if wanted is None or _touches(e, wanted, env_files):
                add(_problem(e))
                # the rest of this file's schema problems too, so one run shows them all
                # (not when the error is in pausectl.yaml: that file has its own schema)
                # (files by their real path: with --ref the names shown are the work tree's)
                real_file = shown_to_path(e.file) if e.file else None
                if real_file is not None and _real(real_file) != _real(root / CONFIG_FILE):
                    doc = _try_doc(real_file, root, e.file)
                    if doc is not None and isinstance(doc.data, dict):
                        for err in schema_errors(doc, "state.schema.json"):
                            add(_problem(err))
            continue
        if wanted is not None and not (wanted & env_files or _real(root / CONFIG_FILE) in wanted):
            continue
        for w in state.warnings:
            add(_warning(w))
        for p in _snapshot_problems(cfg, env, state):
            add(p)
    if wanted:
        for p in sorted(wanted):
            if p.name.endswith((".yaml", ".yml")) and p.exists() and p.name != CONFIG_FILE:
                doc = _try_doc(p, root)
                if doc is None:
                    try:
                        load_yaml_file(p, os.path.relpath(p))
                    except PausectlError as e:
                        add(_problem(e))
                    continue
                for err in schema_errors(doc, "state.schema.json"):
                    add(_problem(err))
    return problems


def _real(p) -> Path:
    """realpath: Path.resolve() raises RuntimeError on a symlink loop (paths.confine reports
    it, with the line that named it)."""
    try:
        return Path(os.path.realpath(p))
    except ValueError:       # a NUL byte: not a file anyone can name
        return Path(str(p).replace("\x00", "\\0"))


def _touches(e: PausectlError, wanted: set[Path], env_files: set[Path]) -> bool:
    if e.file and _real(e.file) in wanted:
        return True
    return bool(wanted & env_files)


def _try_doc(path: Path, root: Path, shown: str | None = None):
    try:
        doc = load_yaml_file(path, shown or os.path.relpath(path))
    except PausectlError:
        return None
    return doc if isinstance(doc.data, dict) else None


def _snapshot_problems(cfg: Config, env: str, state) -> list[dict]:
    """When the environment's live state is a known snapshot: rules that match no DAG, and
    rules crossing tenants (tenants.py)."""
    if cfg.environments[env].backend.get("type") != "snapshot":
        return []
    backend = None
    try:
        backend = open_backend(cfg, env)
        live = backend.list_dags()
    except PausectlError as e:
        return [_problem(e)]
    finally:
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
    ids = {d.dag_id for d in live}
    out = []
    for dag_id, rules in state.dag_rules.items():
        if dag_id not in ids:
            for r in rules:
                out.append(_warning(f"{r.where}: dag entry {dag_id!r} matches no DAG in the "
                                    f"{env} snapshot"))
    for g in state.groups:
        if not any(g.selector.matches(d.dag_id, d.tags, d.owners) for d in live):
            out.append(_warning(f"{g.where}: group {g.name!r} matches no DAG in the {env} snapshot"))
    if cfg.tenants:
        out += [v.to_json() for v in violations(cfg, state, live)]
    return out
