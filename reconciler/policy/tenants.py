"""Tenants: which team owns which DAGs and state files, and who may touch whose DAGs.

```yaml
tenants:                       # in pausectl.yaml
  data-eng: {match: {owners: [data-eng]}, files: [teams/data-eng.yaml], team: "@acme/data-eng"}
  platform: {match: {tags: [canary]}, allow: [data-eng]}   # data-eng may touch platform's DAGs
```

- A DAG belongs to every tenant whose `match` selects it (same selectors as groups).
- A rule belongs to the tenant whose `files` (paths relative to the state repo, globs allowed)
  hold it; else to the tenant named by its `owner`; else to the one tenant whose
  `match.owners` or `team` lists its owner; else to nobody (shared rules are not checked).
- A rule of tenant A that matches a live DAG of tenant B (and not also of A) is an error,
  `file:line`, unless A is in B's `allow`. `validate` checks it against snapshot
  environments, `plan`/`apply` against the live DAGs. Cascades (cascade.py) follow data
  dependencies and are not checked.
- `pausectl codeowners` prints a CODEOWNERS line per tenant file, so GitHub asks that team to
  review changes to it.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.live.base import LiveDag
from reconciler.core.errors import PausectlError
from reconciler.policy.selectors import Selector
from reconciler.state.loader import CONFIG_FILE, Config, EnvState, Rule


@dataclass
class Tenant:
    name: str
    selector: Selector
    files: list[str] = field(default_factory=list)
    team: str | None = None
    allow: list[str] = field(default_factory=list)


@dataclass
class Violation:
    where: str                 # file:line of the rule
    tenant: str                # the rule's tenant
    other: str                 # the tenant whose DAGs it touches
    rule: str                  # the rule's label
    dag_ids: list[str]

    @property
    def message(self) -> str:
        shown = ", ".join(self.dag_ids[:5]) + (" ..." if len(self.dag_ids) > 5 else "")
        return (f"tenant {self.tenant!r}: {self.rule} touches {len(self.dag_ids)} DAG(s) of "
                f"tenant {self.other!r} ({shown}); add {self.tenant!r} to "
                f"tenants.{self.other}.allow in {CONFIG_FILE}, or narrow the rule")

    def text(self) -> str:
        return f"{self.where}: {self.message}"

    def to_json(self) -> dict:
        file, _, line = self.where.rpartition(":")
        return {"severity": "error", "id": "tenant-crossing", "file": file,
                "line": int(line) if line.isdigit() else None, "col": None,
                "message": self.message}


def tenants_of(cfg: Config) -> dict[str, Tenant]:
    out = {}
    for name, t in (cfg.tenants or {}).items():
        out[name] = Tenant(name=name, selector=Selector.from_spec(t["match"]),
                           files=list(t.get("files") or []), team=t.get("team"),
                           allow=list(t.get("allow") or []))
    return out


def _repo_relative(cfg: Config, shown_file: str) -> str:
    """A file as named in messages (relative to the cwd) -> relative to the state repo."""
    try:
        return Path(os.path.relpath(Path(shown_file).resolve(), cfg.root.resolve())).as_posix()
    except ValueError:  # pragma: no cover (another drive)
        return shown_file


def file_tenant(tenants: dict[str, Tenant], rel: str) -> str | None:
    for t in tenants.values():
        if any(rel == f or fnmatch.fnmatchcase(rel, f) for f in t.files):
            return t.name
    return None


def rule_tenant(cfg: Config, tenants: dict[str, Tenant], rule: Rule,
                cache: dict | None = None) -> str | None:
    file = rule.where.rpartition(":")[0] if ":" in rule.where else rule.where
    cache = {} if cache is None else cache
    if file not in cache:
        cache[file] = file_tenant(tenants, _repo_relative(cfg, file))
    name = cache[file]
    if name:
        return name
    owner = rule.owner
    if not owner:
        return None
    if owner in tenants:
        return owner
    hits = [t.name for t in tenants.values() if owner in t.selector.owners or owner == t.team]
    return hits[0] if len(hits) == 1 else None


def dag_tenants(tenants: dict[str, Tenant], dag: LiveDag) -> list[str]:
    return [t.name for t in tenants.values() if t.selector.matches(dag.dag_id, dag.tags, dag.owners)]


def violations(cfg: Config, state: EnvState, live: list[LiveDag]) -> list[Violation]:
    tenants = tenants_of(cfg)
    if not tenants:
        return []
    from reconciler.policy.selectors import SelectorIndex
    rules = state.all_rules()
    files: dict = {}
    mine = {id(r): rule_tenant(cfg, tenants, r, files) for r in rules}
    if not any(mine.values()):
        return []
    index = SelectorIndex((g.selector, g) for g in state.groups if mine[id(g)])
    owner_index = SelectorIndex((t.selector, t.name) for t in tenants.values())
    crossed: dict[tuple[int, str], list[str]] = {}     # (rule, other tenant) -> dag_ids
    by_rule = {id(r): r for r in rules}
    for dag in live:
        hits = [r for r in state.dag_rules.get(dag.dag_id, ()) if mine[id(r)]]
        hits += index.lookup(dag.dag_id, dag.tags, dag.owners) if index else []
        if not hits:
            continue
        owners = owner_index.lookup(dag.dag_id, dag.tags, dag.owners)
        if not owners:
            continue
        for r in hits:
            t = mine[id(r)]
            if t in owners:
                continue
            for other in owners:
                if t not in tenants[other].allow:
                    crossed.setdefault((id(r), other), []).append(dag.dag_id)
    order = {id(r): i for i, r in enumerate(rules)}
    out = []
    for (rid, other), ids in sorted(crossed.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        r = by_rule[rid]
        out.append(Violation(r.where, mine[rid], other, r.label(), sorted(ids)))
    return out


def config_problems(cfg: Config) -> list[PausectlError]:
    """Tenant files claimed by two tenants (errors) or missing (warnings, as PausectlError with
    `severity` attribute set)."""
    out = []
    doc = cfg.doc
    claimed: dict[str, str] = {}
    for name, t in tenants_of(cfg).items():
        for i, f in enumerate(t.files):
            path = ("tenants", name, "files", i)
            line, col = doc.mark(path) if doc else (None, None)
            shown = doc.path if doc else CONFIG_FILE
            if f in claimed:
                e = PausectlError(f"file {f!r} is claimed by tenants {claimed[f]!r} and {name!r}",
                                  shown, line, col)
                e.severity = "error"
                out.append(e)
                continue
            claimed[f] = name
            if not any(c in f for c in "*?[") and not (cfg.root / f).is_file():
                e = PausectlError(f"tenant {name!r}: file {f!r} not found in the state repo",
                                  shown, line, col)
                e.severity = "warning"
                out.append(e)
    return out


def enforce(cfg: Config, state: EnvState, live: list[LiveDag]) -> None:
    """Raise (file:line of the first) when a rule crosses tenants; plan and apply call this."""
    found = violations(cfg, state, live)
    if not found:
        return
    first = found[0]
    file, _, line = first.where.rpartition(":")
    more = ""
    if len(found) > 1:
        more = f" (and {len(found) - 1} more: " + ", ".join(v.where for v in found[1:6]) + \
               (" ..." if len(found) > 6 else "") + ")"
    raise PausectlError(first.message + more, file or None, int(line) if line.isdigit() else None)


# ---- CODEOWNERS ---------------------------------------------------------------------------

def _git_toplevel(path: Path) -> Path | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return Path(out.stdout.strip()).resolve()


def codeowners(cfg: Config, team_prefix: str = "@") -> list[str]:
    """CODEOWNERS lines for every tenant's files, paths from the git repository root."""
    root = cfg.root.resolve()
    top = _git_toplevel(root)
    base = root.relative_to(top).as_posix() if top and (top == root or top in root.parents) \
        else root.name
    base = "" if base in ("", ".") else base + "/"
    lines = [f"# Generated by `pausectl codeowners` from tenants in {base}{CONFIG_FILE}; "
             "do not edit by hand."]
    from reconciler.core.sanitize import codeowners_owner, codeowners_path, term
    lines[0] = f"# {term(lines[0][2:])}"
    for name, t in tenants_of(cfg).items():
        owner = t.team or f"{team_prefix}{name}"
        if not owner.startswith("@") and "@" not in owner:
            owner = "@" + owner
        # one owner token, one path token: a space or newline in either would add owners
        # or whole rules to the CODEOWNERS file
        try:
            codeowners_owner(owner)
        except ValueError as e:
            where = ("tenants", name, "team") if t.team else ("tenants", name)
            hint = "" if t.team else f" (from --team-prefix {team_prefix!r} and the tenant name)"
            raise cfg.doc.error(where, f"tenant {name!r}: {e}{hint}") from None
        if not t.files:
            lines.append(f"# {term(name)}: no files")
            continue
        for i, f in enumerate(t.files):
            try:
                codeowners_path(f"/{base}{f}")
            except ValueError as e:
                raise cfg.doc.error(("tenants", name, "files", i), f"tenant {name!r}: {e}") from None
            lines.append(f"/{base}{f} {owner}")
    return lines
