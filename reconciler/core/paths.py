"""Path confinement: every path pausectl opens on someone's behalf goes through `confine()`.

Paths named by a file of the state repo (includes, an environment's `file:`, a snapshot
backend's `path:`, `ca_bundle`, a promote target) come from whoever can open a pull request, so
they must stay inside their root: the state repo directory (for `--ref`, the tree of that commit,
materialised by gitstate.materialise with its symlinks as they are in git, so the same check
applies and nothing of the working disk is read). A path is refused, with the file:line that
named it, when it is absolute, has a NUL or control character, leaves the root through `..` or
a symlink, loops, is missing, is a directory where a file is expected, or is not a regular file
(a FIFO would hang the reader).

Paths given on the command line (`--snapshot`, `--plan`, `--journal`) belong to whoever runs
pausectl: they may be anywhere, but get the same NUL / missing / directory checks, named by their
option. Output paths (`--out`, `--metrics-file`, the journal directory) follow the output rules
(docs/security.md): never under a `.git` directory, and never onto a file of a loaded state repo
(inside its directory, or tracked by git in the repository holding it) unless the command was
given `--force`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from reconciler.core.errors import PausectlError

# State repo directories this process has loaded (state.load_config, gitstate.materialise
# register them): outputs may not land inside them without --force.
STATE_ROOTS: set[str] = set()

_CONTROL = {chr(c) for c in range(32)} | {chr(127)}


def register_state_root(root) -> None:
    STATE_ROOTS.add(os.path.realpath(root))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confine(name, root=None, *, base=None, doc=None, at=(), option: str | None = None,
            what: str = "file", expect: str = "file", write: bool = False,
            force: bool = False, policy_only: bool = False) -> Path:
    """The resolved (realpath) Path for `name`, or a PausectlError located where it was named.

    root:   the directory `name` must stay inside (None: a command-line path, no root);
    base:   the directory a relative `name` is relative to (default: root, else the cwd);
    doc/at: the LoadedYaml and JSON path that named it (errors point there), or the name
            of the file that is itself at fault (a symlinked pausectl.yaml), or
    option: the command-line option that named it (errors read `--out: ...`);
    what:   how to call it in messages ("include", "snapshot path", ...);
    expect: "file" or "dir" (reads); write: an output path (output rules, see module doc);
    policy_only: (outputs) only the security rules; whether the file can be written is left
            to the writer (a metrics file that cannot be written is a warning, not an error).
    """
    def fail(message: str) -> PausectlError:
        label = f"{what} {shown!r}"
        if isinstance(doc, str):           # the file itself is at fault (pausectl.yaml)
            return PausectlError(message, doc)
        if doc is not None:
            return doc.error(at, f"{label} {message}")
        prefix = f"{option}: " if option else ""
        return PausectlError(f"{prefix}{label} {message}")

    shown = name if isinstance(name, str) else str(name)
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise fail("must be a non-empty path")
    shown = name if len(name) <= 120 else name[:117] + "..."
    if "\x00" in name:
        shown = name.replace("\x00", "\\0")[:120]
        raise fail("contains a NUL byte")
    if any(c in _CONTROL for c in name):
        shown = name.encode("unicode_escape").decode("ascii")[:120]
        raise fail("contains a control character")
    if len(name) > 4096:
        raise fail("is too long")
    start = base if base is not None else (root if root is not None else os.getcwd())
    if root is not None:
        if os.path.isabs(name) or name.startswith("~"):
            raise fail("must be a relative path (an absolute path points outside the state repo)")
        real_root = os.path.realpath(root)
        lexical = os.path.normpath(os.path.join(os.path.abspath(start), name))
        if not _inside(lexical, os.path.normpath(os.path.abspath(root))):
            raise fail("points outside the state repo (`..`)")
    joined = os.path.join(start, name)
    try:
        real = os.path.realpath(joined, strict=True)
    except FileNotFoundError:
        real = None
    except OSError as e:  # ELOOP, ENAMETOOLONG, ENOTDIR, EACCES on a component...
        if not (write and policy_only):
            raise fail(f"cannot be resolved ({e.strerror or 'symlink loop'})") from None
        real = None
    if root is not None:
        check = real if real is not None else os.path.realpath(joined)
        if not _inside(check, real_root):
            raise fail("is a symlink to outside the state repo")
    if write:
        return _check_output(Path(real or os.path.realpath(joined)), real is not None, fail,
                             force, expect, policy_only)
    if real is None:
        raise fail("not found")
    if expect == "dir":
        if not os.path.isdir(real):
            raise fail("is not a directory")
        return Path(real)
    if os.path.isdir(real):
        raise fail("is a directory, expected a file")
    if not os.path.isfile(real):
        raise fail("is not a regular file")
    return Path(real)


def _check_output(real: Path, exists: bool, fail, force: bool, expect: str,
                  policy_only: bool) -> Path:
    if ".git" in real.parts:
        raise fail("is inside a .git directory (never written)")
    if policy_only:
        pass
    elif exists and expect == "dir":
        if not real.is_dir():
            raise fail("is not a directory")
    elif exists and real.is_dir():
        raise fail("is a directory, expected a file")
    elif exists and not real.is_file():
        raise fail("is not a regular file")
    parent = real.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() and not policy_only:
        raise fail(f"cannot be created: {parent} is not a directory")
    if force:
        return real
    text = str(real)
    for root in sorted(STATE_ROOTS):
        if _inside(text, root):
            raise fail("is inside the state repo (pass --force to write there)")
    if exists and expect == "file" and real.is_file() and _tracked(real):
        raise fail("is a file tracked by git (pass --force to overwrite it)")
    return real


def _tracked(real: Path) -> bool:
    """True when `real` is tracked in the git repository holding a loaded state repo."""
    for root in sorted(STATE_ROOTS):
        top = _git_top(root)
        if top and _inside(str(real), top):
            try:
                out = subprocess.run(["git", "-C", top, "ls-files", "-z", "--",
                                      os.path.relpath(real, top)], capture_output=True,
                                     timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                return False
            if out.returncode == 0 and out.stdout.strip(b"\x00"):
                return True
    return False


_TOPS: dict[str, str | None] = {}


def _git_top(root: str) -> str | None:
    if root not in _TOPS:
        try:
            out = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"],
                                 capture_output=True, text=True, timeout=30)
            top = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            top = ""
        _TOPS[root] = os.path.realpath(top) if top else None
    return _TOPS[root]
