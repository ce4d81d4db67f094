"""Read the desired state at a git ref without touching the working tree.

Refs come from users and pipelines (`--ref`, `diff BASE HEAD`, `--branch`), so they are checked
before git sees them: no option injection (a leading `-`), no `rev:path` or absolute paths, no
ranges, reflog or shell syntax. The state directory's tree is materialised from the commit's
tree object (never from the working disk) into a private temp dir that is removed afterwards:
regular files with their content, symlinks as symlinks with the target git records (so
paths.confine resolves them exactly as in a checkout, and refuses those leaving the tree),
submodules not at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.core.paths import register_state_root
from reconciler.state.model import DISPLAY_ALIASES

# A conservative ref syntax: branch/tag names, shas, HEAD~2, main^ ... nothing else.
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/~^\-+]{0,199}$")
_BAD_PARTS = ("..", "//", "/.", "@{", ".lock/")


def check_ref(ref: str) -> str:
    """`ref` if it is a safe git revision name, else a PausectlError (never reaches git)."""
    if not isinstance(ref, str) or not _REF.match(ref) or any(b in ref for b in _BAD_PARTS) \
            or ref.endswith((".lock", "/", ".")):
        raise PausectlError(f"invalid git ref {ref!r} (use a branch, tag or commit, "
                            "e.g. main, v1.2, HEAD~1, 3f2c1ab)")
    return ref


def check_branch(name: str) -> str:
    """A name for a new branch: a safe ref without revision syntax (~ ^)."""
    check_ref(name)
    if any(c in name for c in "~^") or name == "HEAD" or name.startswith("refs/"):
        raise PausectlError(f"invalid branch name {name!r}")
    return name


def open_repo(path: Path):
    import git
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise PausectlError(f"{path} is not inside a git repository") from None


def resolve_commit(repo, ref: str):
    import git
    check_ref(ref)
    try:
        return repo.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError, IndexError, TypeError):
        raise PausectlError(f"unknown git ref {ref!r}") from None


def state_location(state_dir) -> tuple[object, Path, str]:
    """(repo, absolute state dir, state dir relative to the repo top) for a state dir."""
    state = Path(state_dir or "state").resolve()
    if not state.is_dir():
        raise PausectlError(f"state repo {str(state_dir or 'state')!r} not found")
    repo = open_repo(state)
    top = Path(repo.working_tree_dir).resolve()
    try:
        rel = state.relative_to(top).as_posix()
    except ValueError:
        raise PausectlError(f"state repo {state} is outside its git work tree") from None
    return repo, state, "" if rel == "." else rel


def shown_state(state_dir) -> str:
    """How the state dir is named in messages (relative to the working directory)."""
    state = Path(state_dir or "state")
    try:
        return os.path.relpath(state.resolve(), Path.cwd())
    except ValueError:  # pragma: no cover
        return str(state)


class RefTree:
    """A state dir materialised from a commit; files in messages read as in the work tree."""

    def __init__(self, tmp: tempfile.TemporaryDirectory, root: Path, sha: str, ref: str,
                 shown: str):
        self._tmp, self.root, self.sha, self.ref, self.shown = tmp, root, sha, ref, shown
        self._key = str(root)
        DISPLAY_ALIASES[self._key] = shown

    @property
    def label(self) -> str:
        if re.fullmatch(r"[0-9a-f]{7,40}", self.ref) and self.sha.startswith(self.ref):
            return self.sha[:12]
        return f"{self.ref}@{self.sha[:12]}"

    def state_rel(self, shown_file: str) -> str:
        """A file as named in messages -> its path inside the state dir (posix)."""
        f = os.path.normpath(shown_file)
        prefix = os.path.normpath(self.shown) + os.sep
        if self.shown not in ("", ".") and f.startswith(prefix):
            f = f[len(prefix):]
        return f.replace(os.sep, "/")

    def cleanup(self) -> None:
        DISPLAY_ALIASES.pop(self._key, None)
        self._tmp.cleanup()

    def __enter__(self) -> "RefTree":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def materialise(state_dir, ref: str, commit=None) -> RefTree:
    """The state dir as of `ref` (or an already resolved `commit`) in a temp dir."""
    repo, state_abs, rel = state_location(state_dir)
    commit = commit if commit is not None else resolve_commit(repo, ref)
    tmp = tempfile.TemporaryDirectory(prefix="pausectl-ref-")
    out = Path(tmp.name).resolve() / "state"
    try:
        tree = commit.tree / rel if rel else commit.tree
    except KeyError:
        tmp.cleanup()
        raise PausectlError(f"{rel} does not exist at {ref}") from None
    if tree.type != "tree":   # a file or a symlink at that ref: never followed
        tmp.cleanup()
        raise PausectlError(f"{rel} is not a directory at {ref}")
    _write_tree(tree, out)
    register_state_root(out)
    register_state_root(state_abs)
    return RefTree(tmp, out, commit.hexsha, ref, shown_state(state_dir))


def checkout_ref(state_dir, ref: str):
    """Materialise the state repo as of `ref` into a temp dir: (tree, state_path, sha).
    `tree.cleanup()` removes it."""
    t = materialise(state_dir, ref)
    return t, t.root, t.sha


def _write_tree(tree, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in tree:
        target = dest / item.name
        if item.type == "tree":
            _write_tree(item, target)
        elif item.type == "blob" and item.mode & 0o170000 == 0o100000:  # regular files
            target.write_bytes(item.data_stream.read())
        elif item.type == "blob" and item.mode & 0o170000 == 0o120000:
            # a symlink, as git records it: confine() refuses it when it leaves the tree,
            # and nothing outside the temp dir is ever opened through it
            link = item.data_stream.read().decode("utf-8", "replace")
            if "\x00" not in link:
                os.symlink(link, target)


# ---- history ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    email: str
    when: datetime
    summary: str
    message: str

    @property
    def short(self) -> str:
        return self.sha[:10]

    def to_json(self) -> dict:
        return {"commit": self.sha, "author": self.author, "email": self.email,
                "date": self.when.isoformat(), "summary": self.summary}


def commit_info(c) -> CommitInfo:
    when = datetime.fromtimestamp(c.authored_date, tz=timezone.utc)
    msg = c.message if isinstance(c.message, str) else c.message.decode("utf-8", "replace")
    return CommitInfo(c.hexsha, c.author.name or "", c.author.email or "", when,
                      msg.strip().splitlines()[0] if msg.strip() else "", msg)


def file_text(commit, path: str) -> str | None:
    """A file's text at a commit (path relative to the repo top), None when absent."""
    try:
        blob = commit.tree / path
    except KeyError:
        return None
    if blob.type != "blob":
        return None
    return blob.data_stream.read().decode("utf-8", "replace")


def commits_touching(repo, paths: list[str], ref: str = "HEAD", max_count: int = 200) -> list:
    """Commits (newest first) reachable from `ref` that changed any of `paths` (repo-relative)."""
    check_ref(ref)
    if not paths:
        return []
    return list(repo.iter_commits(ref, paths=paths, max_count=max_count))


def changed_paths(repo, base, head) -> set[str]:
    """Paths (repo-relative) that differ between two commits."""
    out = set()
    for d in base.diff(head):
        for p in (d.a_path, d.b_path):
            if p:
                out.add(p)
    return out


def git(repo, *args: str, env: dict | None = None, input: str | None = None) -> str:
    """Run git in the repo with validated arguments (callers check refs first)."""
    full = dict(os.environ)
    full.update(env or {})
    proc = subprocess.run(["git", *args], cwd=repo.working_tree_dir, capture_output=True,
                          text=True, env=full, input=input)
    if proc.returncode != 0:
        raise PausectlError(f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip()[:300]}")
    return proc.stdout


class desired_state:
    """The state repo directory to read: the working tree, or a git ref materialised read-only."""

    def __init__(self, state_dir, ref):
        self.state_dir, self.ref, self._tmp = state_dir, ref, None

    def __enter__(self):
        if not self.ref:
            return self.state_dir, None
        self._tmp, root, sha = checkout_ref(self.state_dir, self.ref)
        return root, f"{self.ref}@{sha[:12]}"

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.cleanup()
        return False
