"""Read the desired state at a git ref without touching the working tree."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from .errors import PausectlError

# A conservative ref syntax: no option injection (leading '-'), no '..' ranges, no control chars.
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/~^\-]{1,200}$")


def check_ref(ref: str) -> str:
    if not _REF.match(ref) or ref.endswith((".lock", "/", ".")):
        raise PausectlError(f"invalid git ref {ref!r}")
    return ref


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
    except (git.BadName, ValueError, git.GitCommandError):
        raise PausectlError(f"unknown git ref {ref!r}") from None


def checkout_ref(state_dir, ref: str):
    """Materialise the state repo as of `ref` into a temp dir: (tmpdir, state_path, sha)."""
    state = Path(state_dir or "state").resolve()
    if not state.is_dir():
        raise PausectlError(f"state repo {str(state_dir or 'state')!r} not found")
    repo = open_repo(state)
    commit = resolve_commit(repo, ref)
    top = Path(repo.working_tree_dir).resolve()
    rel = state.relative_to(top).as_posix()
    tmp = tempfile.TemporaryDirectory(prefix="pausectl-ref-")
    out = Path(tmp.name)
    try:
        tree = commit.tree / rel if rel not in ("", ".") else commit.tree
    except KeyError:
        tmp.cleanup()
        raise PausectlError(f"{rel} does not exist at {ref}") from None
    _write_tree(tree, out / "state")
    return tmp, out / "state", commit.hexsha


def _write_tree(tree, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in tree:
        target = dest / item.name
        if item.type == "tree":
            _write_tree(item, target)
        elif item.type == "blob" and item.mode & 0o170000 == 0o100000:  # regular files only
            target.write_bytes(item.data_stream.read())
