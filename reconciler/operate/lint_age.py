"""How long a pause has been in git: the committer time of its `paused:` line (git blame)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path

from reconciler.core.errors import PausectlError
from reconciler.operate.lint_config import split_where
from reconciler.state.loader import Rule


class GitAges:
    """Committer time of individual lines, from `git blame` (one run per file, cached)."""

    def __init__(self):
        self._cache: dict[str, dict[int, datetime] | None] = {}

    def line_time(self, file: str, line: int) -> datetime | None:
        if file not in self._cache:
            self._cache[file] = _blame(file)
        times = self._cache[file]
        if times is None:
            return None
        return times.get(line)


def _blame(file: str) -> dict[int, datetime] | None:
    from datetime import timezone
    path = Path(file).resolve()
    try:
        out = subprocess.run(["git", "-C", str(path.parent), "blame", "--line-porcelain", "--",
                              path.name], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None      # not in a git repository, or the file is not tracked
    times: dict[int, datetime] = {}
    sha = None
    line_no = None
    uncommitted = False
    for text in out.stdout.splitlines():
        if text.startswith("\t"):
            continue
        parts = text.split(" ")
        if len(parts) >= 3 and len(parts[0]) == 40 and all(c in "0123456789abcdef" for c in parts[0]):
            sha, line_no = parts[0], int(parts[2])
            uncommitted = set(sha) == {"0"}
        elif parts[0] == "committer-time" and line_no is not None:
            times[line_no] = (datetime.now(timezone.utc) if uncommitted else
                              datetime.fromtimestamp(int(parts[1]), timezone.utc))
    return times


def paused_line(rule: Rule) -> int | None:
    """The line of the rule's `paused:` key (or the rule's own line)."""
    from reconciler.state.yamlload import load_yaml_file
    file, line = split_where(rule.where)
    if file is None:
        return line
    try:
        doc = load_yaml_file(Path(file), file)
    except PausectlError:
        return line
    data = doc.data if isinstance(doc.data, dict) else {}
    if rule.layer == "dag":
        path = ("dags", rule.name, "paused")
    else:
        groups = data.get("groups") or []
        idx = next((i for i, g in enumerate(groups) if isinstance(g, dict)
                    and g.get("name") == rule.name), None)
        if idx is None:
            return line
        path = ("groups", idx, "paused")
    try:
        return doc.mark(path)[0]
    except Exception:  # noqa: BLE001 - a mark that cannot be found falls back to the rule line
        return line
