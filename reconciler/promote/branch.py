"""Promotion and git: the history of one entry, conflicts, and the commit on a new branch.

Conflicts: a target entry changed since the last promotion from->to (a commit with the
`Pausectl-Promotion: from -> to` trailer), or else since `--since REF`'s merge-base, or else
since the source entry's last change, and it differs from what would be promoted: both sides
are shown, with the commits that changed the target.

The commit is made with plumbing (a private index file): the working tree and the index stay
untouched; the message lists every promoted rule and ends in the trailer.
"""

from __future__ import annotations

import contextlib
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Callable

from reconciler.core.errors import PausectlError
from reconciler.promote.edit import entry_of, flow_json, load_plain, norm, plain
from reconciler.promote.select import Candidate, Promotion, file_of
from reconciler.state.gitref import commit_info, file_text, git, resolve_commit
from reconciler.state.model import Rule

TRAILER = "Pausectl-Promotion"


# ---- git history of entries --------------------------------------------------------------

def entry_at(commit, path: str, kind: str, name: str):
    if commit is None:
        return None
    return norm(entry_of(load_plain(file_text(commit, path)), kind, name))


def last_change(repo, head, path: str, kind: str, name: str, stop=None):
    """The newest commit (from head back, not past `stop`) that changed the entry."""
    for c in repo.iter_commits(head.hexsha, paths=[path], max_count=500):
        if stop is not None and c.hexsha == stop.hexsha:
            return None
        parent = c.parents[0] if c.parents else None
        if entry_at(c, path, kind, name) != entry_at(parent, path, kind, name):
            return c
    return None


def changes_since(repo, head, base, path: str, kind: str, name: str) -> list:
    """Commits after `base` (exclusive) up to head that changed the entry, newest first."""
    out = []
    rev = f"{base.hexsha}..{head.hexsha}" if base is not None else head.hexsha
    for c in repo.iter_commits(rev, paths=[path], max_count=500):
        parent = c.parents[0] if c.parents else None
        if entry_at(c, path, kind, name) != entry_at(parent, path, kind, name):
            out.append(c)
    return out


def last_promotion(repo, head, source: str, target: str):
    needle = f"{TRAILER}: {source} -> {target}"
    for c in repo.iter_commits(head.hexsha, max_count=2000):
        msg = c.message if isinstance(c.message, str) else c.message.decode("utf-8", "replace")
        if needle in msg.splitlines():
            return c
    return None


# ---- conflicts ---------------------------------------------------------------------------

def classify(repo, head, res: Promotion, target_doc: dict, target_rules: dict[tuple, Rule],
             since: str | None, repo_path: Callable[[str], str]) -> dict[str, datetime]:
    """Set each candidate's status (new | update | same | conflict), target entry and source
    commit; conflicts also go to res.failures. Returns name -> when the source rule last
    changed (the soak gate's fallback for 'since when')."""
    promo_base = last_promotion(repo, head, res.source, res.target)
    since_base = None
    if since:
        bases = repo.merge_base(head, resolve_commit(repo, since))
        since_base = bases[0] if bases else None
    why = ("last promotion" if promo_base is not None else
           f"merge-base with {since}" if since_base is not None else "source rule's last change")
    commit_times: dict[str, datetime] = {}
    for c in res.candidates:
        cur = entry_of(target_doc, c.kind, c.name)
        c.target_entry = plain(cur) if cur is not None else None
        r = target_rules.get((c.kind, c.name))
        c.target_where = r.where if r else None
        src_commit = last_change(repo, head, repo_path(file_of(c.rule.where)), c.kind, c.name)
        if src_commit is not None:
            c.source_commit = src_commit.hexsha
            commit_times[c.name] = commit_info(src_commit).when
        if cur is None:
            c.status = "new"
        elif norm(cur) == norm(c.entry):
            c.status = "same"
            continue
        else:
            c.status = "update"
        base = promo_base or since_base or src_commit
        if base is not None:
            _check_conflict(repo, head, res, c, base, why, norm(cur))
    return commit_times


def _check_conflict(repo, head, res: Promotion, c: Candidate, base, why: str,
                    target_now) -> None:
    """A conflict when the target entry at `base` is not what it is now."""
    target_then = entry_at(base, res.target_file, c.kind, c.name)
    if target_now == target_then:
        return
    changed = changes_since(repo, head, base, res.target_file, c.kind, c.name)
    c.status = "conflict"
    c.conflict = {
        "since": {"commit": base.hexsha, "why": why},
        "source": {"where": c.rule.where, "entry": norm(c.entry)},
        "target": {"where": c.target_where, "entry": target_now, "was": target_then},
        "target_commits": [commit_info(x).to_json() for x in changed],
    }
    res.failures.append(
        f"conflict, {c.label}: {res.target} changed it since the {why} ({base.hexsha[:10]}); "
        f"{res.source} ({c.rule.where}) has {flow_json(norm(c.entry))}, "
        f"{res.target} ({c.target_where}) has {flow_json(target_now)}"
        + (f" (changed in {', '.join(x.hexsha[:10] + ' by ' + x.author.name for x in changed[:3])})"
           if changed else ""))


# ---- the commit --------------------------------------------------------------------------

def commit_message(res: Promotion, source_sha: str) -> str:
    todo = res.to_promote
    lines = [f"pausectl: promote {res.source} -> {res.target}: {len(todo)} change(s)", ""]
    for c in todo:
        state = "paused" if c.rule.paused else "running"
        bits = [f"{c.label}: {state}"]
        if c.rule.reason:
            bits.append(f"reason {c.rule.reason!r}")
        if c.rule.owner:
            bits.append(f"owner {c.rule.owner}")
        if c.rule.ticket:
            bits.append(f"ticket {c.rule.ticket}")
        lines.append(f"- {', '.join(bits)} [{c.status}, from {c.rule.where}]")
    lines.append("")
    gates = [c.gate for c in todo if c.gate]
    if gates and all(g["passed"] for g in gates):
        ran = [g["ran_hours"] for g in gates if g.get("ran_hours") is not None]
        lines.append(f"Soak: ran in {res.source} for at least {min(ran):.1f}h "
                     f"(promotion.soak_hours {gates[0]['soak_hours']:g}) without failed runs"
                     if ran else f"Soak: checked in {res.source}")
    if res.target_plan:
        s = res.target_plan["summary"]
        lines.append(f"Target plan: {s['pause']} to pause, {s['unpause']} to unpause in "
                     f"{res.target}")
    lines += ["", f"{TRAILER}: {res.source} -> {res.target}",
              f"Pausectl-Source-Commit: {source_sha}"]
    return "\n".join(lines) + "\n"


def commit_on_branch(repo, head, path: str, text: str, branch: str, message: str) -> str:
    """One commit on a new branch from HEAD changing `path`, without touching the working tree
    or the index (a private index file)."""
    if any(h.name == branch for h in repo.heads):
        raise PausectlError(f"branch {branch!r} already exists")
    with tempfile.TemporaryDirectory(prefix="pausectl-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo, "read-tree", head.hexsha, env=env)
        blob = git(repo, "hash-object", "-w", "--stdin", input=text).strip()
        mode = "100644"
        with contextlib.suppress(PausectlError):
            out = git(repo, "ls-tree", head.hexsha, "--", path).split()
            if out:
                mode = out[0]
        if mode not in ("100644", "100755"):   # a symlink or submodule at that path in git
            raise PausectlError(f"{path} is not a regular file in git (mode {mode}); "
                                "promotion rewrites regular files only")
        git(repo, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
        tree = git(repo, "write-tree", env=env).strip()
        sha = git(repo, "commit-tree", tree, "-p", head.hexsha, "-F", "-", input=message).strip()
    # the empty old value makes update-ref refuse when the branch appeared meanwhile
    git(repo, "update-ref", f"refs/heads/{branch}", sha, "0" * 40)
    return sha
