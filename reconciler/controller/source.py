"""Where the controller reads the desired state each tick: a directory (re-read every tick),
a git ref of the repository holding it (materialised read-only, like `--ref`), or a git URL
cloned once into a cache directory and fetched every tick (`--repo URL --ref BRANCH`)."""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.state.gitref import check_ref, desired_state

_URL = re.compile(r"^(https://|ssh://|git@|file://)[^\s]+$")


class StateSource:
    def __init__(self, state_dir: str | None, repo: str | None = None, ref: str | None = None,
                 cache: str | None = None, subdir: str = "state"):
        if repo is not None and not _URL.match(repo):
            raise PausectlError(f"--repo: {repo[:80]!r} is not a git URL (https://, ssh://, "
                                "git@ or file://)")
        if ref is not None:
            check_ref(ref)
        if Path(subdir).is_absolute() or ".." in Path(subdir).parts:
            raise PausectlError(f"--repo-path: {subdir!r} must stay inside the repository")
        self.state_dir, self.repo, self.ref = state_dir, repo, ref
        self.cache = Path(cache or ".pausectl/checkout")
        self.subdir = subdir
        self.revision: str | None = None     # what the last tick read ("main@1a2b3c4d5e6f")

    def _git(self, *args: str) -> None:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=300,
                              check=False)
        if proc.returncode != 0:
            from reconciler.core.secrets import scrub
            raise PausectlError(f"git {args[0]} failed: {scrub(proc.stderr.strip())[:300]}")

    def _fetch(self) -> Path:
        if not (self.cache / ".git").is_dir():
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--quiet", "--", self.repo, str(self.cache))
        self._git("-C", str(self.cache), "fetch", "--quiet", "origin", "--", self.ref or "HEAD")
        return self.cache / self.subdir

    @contextlib.contextmanager
    def checkout(self):
        """The state directory for one tick (a temp tree for a ref, removed afterwards)."""
        if self.repo is None:
            with desired_state(self.state_dir, self.ref) as (root, label):
                self.revision = label
                yield root
            return
        with desired_state(self._fetch(), "FETCH_HEAD") as (root, label):
            self.revision = f"{self.ref or 'HEAD'}@{label.rsplit('@', 1)[-1]}"
            yield root
