"""Which rules a promotion carries: `promote: true` rules of the source's own files.

Own files: the source environment's state file and the includes the target does not share
(a shared include is already in force in both). Dag entries go by dag_id, groups by name;
`promote: true` itself is kept only when the target promotes further (`promote_to`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.promote.edit import entry_of, plain, ruamel_yaml
from reconciler.state.model import Config, EnvState, Rule


@dataclass
class Candidate:
    kind: str                       # dag | group
    name: str
    rule: Rule                      # the source rule
    entry: object                   # ruamel entry to write
    status: str = "new"             # new | update | same | conflict
    target_where: str | None = None
    target_entry: dict | None = None
    conflict: dict | None = None
    source_commit: str | None = None
    gate: dict | None = None

    @property
    def label(self) -> str:
        return f"{'dag entry' if self.kind == 'dag' else 'group'} {self.name}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "status": self.status,
                "source": self.rule.where, "paused": self.rule.paused,
                "reason": self.rule.reason, "owner": self.rule.owner, "ticket": self.rule.ticket,
                "target": self.target_where, "target_entry": self.target_entry,
                "entry": plain(self.entry), "source_commit": self.source_commit,
                "conflict": self.conflict, "gate": self.gate}


@dataclass
class Promotion:
    """One promotion from -> to: what was found, checked, and (unless failures) committed."""

    source: str
    target: str
    target_file: str                  # repo-relative path of the file it rewrites
    dry_run: bool = False
    candidates: list[Candidate] = field(default_factory=list)
    target_plan: dict | None = None   # the target's plan with the promoted rules (gate)
    failures: list[str] = field(default_factory=list)   # gates and conflicts: nothing written
    warnings: list[str] = field(default_factory=list)
    new_text: str | None = None       # the target file as it would be written
    message: str | None = None
    branch: str | None = None         # set once committed
    commit: str | None = None

    @property
    def to_promote(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status in ("new", "update")]

    def to_json(self) -> dict:
        return {"from": self.source, "to": self.target, "target_file": self.target_file,
                "dry_run": self.dry_run, "ok": not self.failures,
                "candidates": [c.to_json() for c in self.candidates],
                "target_plan": self.target_plan, "warnings": self.warnings,
                "failures": self.failures, "branch": self.branch, "commit": self.commit,
                "message": self.message}


def _own_files(cfg: Config, src: EnvState, dst: EnvState) -> set[str]:
    return set(src.files) - set(dst.files)


def file_of(where: str) -> str:
    return where.rpartition(":")[0]


def _source_entries(cfg: Config, src_state: EnvState, files: set[str]) -> dict[str, object]:
    """shown file -> ruamel document, for the source files holding promotable rules."""
    y = ruamel_yaml()
    docs = {}
    for f in files:
        p = Path(f)
        docs[f] = y.load(p.read_text(encoding="utf-8")) if p.is_file() else None
    return docs


def find_candidates(cfg: Config, src: EnvState, dst: EnvState, only: list[str] | None,
                    keep_promote: bool) -> list[Candidate]:
    own = _own_files(cfg, src, dst)
    rules = [r for r in src.all_rules() if r.promote and file_of(r.where) in own]
    if only:
        wanted = set(only)
        rules = [r for r in rules if r.name in wanted]
        unknown = wanted - {r.name for r in rules}
        if unknown:
            raise PausectlError(f"--dags: no promotable rule (promote: true) named "
                                f"{', '.join(sorted(unknown))} in {src.name}'s files")
    docs = _source_entries(cfg, src, {file_of(r.where) for r in rules})
    out = []
    seen = set()
    for r in rules:
        kind = "dag" if r.layer == "dag" else "group"
        if (kind, r.name) in seen:
            raise PausectlError(f"{r.where}: {r.label()} is promotable in two of {src.name}'s "
                                "files; keep one")
        seen.add((kind, r.name))
        entry = copy.deepcopy(entry_of(docs[file_of(r.where)], kind, r.name))
        if entry is None:   # pragma: no cover (the loader found it)
            raise PausectlError(f"{r.where}: cannot read {r.label()}")
        if not keep_promote and "promote" in entry:
            del entry["promote"]
        out.append(Candidate(kind, r.name, r, entry))
    return out
