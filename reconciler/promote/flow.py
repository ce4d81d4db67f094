"""`pausectl promote --from dev --to prod`: carry promotable rules into the next environment.

The stages, each in its own module:
- select.py: which rules are carried (`promote: true` in the source's own files);
- branch.py: their git history, conflicts with the target since the last promotion, and the
  commit on a new branch;
- edit.py: the comment-preserving, line-exact edit of the target file;
- soak.py: the live gates (soak in the source, the target's plan and safety guards);
- render.py: the result as text.

Everything is checked before anything is written; the result is one commit on a new branch
(plumbing: the working tree and index are untouched; `--checkout` switches to it), with a
message listing every promoted rule.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.paths import confine
from reconciler.core.timeutil import utcnow
from reconciler.promote.branch import classify, commit_message, commit_on_branch
from reconciler.promote.edit import apply_updates, load_plain
from reconciler.promote.select import Promotion, file_of, find_candidates
from reconciler.promote.soak import soak_gate, target_gate
from reconciler.state.gitref import check_branch, check_ref, git, resolve_commit, state_location
from reconciler.state.loader import load_config, load_env
from reconciler.state.model import Config


def _route(cfg: Config, source: str, target: str | None) -> str:
    """The target environment, checked against promote_to and promotion.path."""
    cfg.env(source)
    src_ec = cfg.environments[source]
    if target is None:
        target = src_ec.promote_to
        if not target:
            raise PausectlError(f"{source} has no promote_to in pausectl.yaml; pass --to ENV")
    cfg.env(target)
    if target == source:
        raise PausectlError("--from and --to name the same environment")
    if src_ec.promote_to and src_ec.promote_to != target:
        raise PausectlError(f"{source} promotes to {src_ec.promote_to} (promote_to in "
                            f"pausectl.yaml), not {target}")
    path = (cfg.promotion or {}).get("path")
    if path and (source not in path or target not in path
                 or path.index(target) != path.index(source) + 1):
        raise PausectlError(f"promotion.path {path} does not go from {source} to {target}")
    return target


def promote(state_dir, source: str, target: str | None, dags: list[str] | None = None,
            branch: str | None = None, dry_run: bool = False, since: str | None = None,
            at: datetime | None = None, checkout: bool = False) -> Promotion:
    at = at or utcnow()
    repo, state_abs, rel = state_location(state_dir)
    cfg = load_config(state_abs)
    target = _route(cfg, source, target)
    if branch:
        check_branch(branch)
    if since:
        check_ref(since)

    src = load_env(cfg, source, now=at)
    dst = load_env(cfg, target, now=at)
    tgt_ec = cfg.environments[target]
    # the file the promotion rewrites: confined like every path (load_env checked it too);
    # written and committed at its real path, never through a symlink
    tgt_file = confine(tgt_ec.file, state_abs, doc=cfg.doc, at=("environments", target),
                       what=f"state file of environment {target!r}")
    prefix = f"{rel}/" if rel else ""

    def repo_path(shown: str) -> str:
        """A state file as named in messages -> its path in the git repo."""
        return prefix + Path(os.path.relpath(Path(shown).resolve(), state_abs)).as_posix()

    target_rel = tgt_file.relative_to(state_abs.resolve()).as_posix()
    target_path = prefix + target_rel
    # promotion reads committed state: the files involved must match HEAD
    involved = sorted({repo_path(f) for f in set(src.files) | {str(state_abs / tgt_ec.file)}})
    dirty = [ln[3:] for ln in git(repo, "status", "--porcelain", "--", *involved).splitlines()
             if ln.strip()]
    if dirty:
        raise PausectlError(f"uncommitted changes in {', '.join(dirty)}: commit or stash them "
                            "first (promotion works on commits)")
    head = resolve_commit(repo, "HEAD")
    res = Promotion(source, target, target_path, dry_run=dry_run)
    res.candidates = find_candidates(cfg, src, dst, dags, keep_promote=bool(tgt_ec.promote_to))
    if not res.candidates:
        res.warnings.append(f"no rule in {source}'s own files is marked promote: true")
        return res

    text = (state_abs / tgt_ec.file).read_text(encoding="utf-8")
    tgt_rules = {(("dag" if r.layer == "dag" else "group"), r.name): r for r in dst.all_rules()
                 if Path(file_of(r.where)).resolve() == (state_abs / tgt_ec.file).resolve()}
    commit_times = classify(repo, head, res, load_plain(text) or {}, tgt_rules, since,
                            repo_path)
    todo = res.to_promote
    if not todo:
        if not res.failures:
            res.warnings.append(f"nothing to promote: {target} already has every promotable rule")
        return res

    new_text, warns = apply_updates(text, [(c.kind, c.name, c.entry) for c in todo])
    res.warnings += warns
    res.new_text = new_text
    res.failures += soak_gate(cfg, src, todo, at, commit_times)
    plan, fails = target_gate(state_abs, target, target_rel, new_text, at, todo)
    res.target_plan = plan
    res.failures += fails
    res.message = commit_message(res, head.hexsha)
    if res.failures or dry_run:
        return res
    res.branch = branch or f"pausectl/promote-{source}-to-{target}-{at.strftime('%Y%m%d-%H%M%S')}"
    check_branch(res.branch)
    res.commit = commit_on_branch(repo, head, target_path, new_text, res.branch, res.message)
    if checkout:
        git(repo, "checkout", "-q", res.branch, "--")
    return res
