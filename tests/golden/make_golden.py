"""Regenerate tests/golden/out/ (only when an output change is intended):
    .venv/bin/python tests/golden/make_golden.py
"""

from __future__ import annotations

import os
import re
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from cases import cases  # noqa: E402


def build_repo(tmp: pathlib.Path) -> pathlib.Path:
    """A git repo: commit 1 = the example state, commit 2 = one rule changed in prod."""
    repo = tmp / "repo"
    # Only what the golden cases read: the state without its own tests (state/tests/, for
    # `pausectl test`). The schemas come from the package, not the repo, so they stay out:
    # the golden commits' hashes (shown by `diff`) then never move with a schema change.
    shutil.copytree(ROOT / "state", repo / "state", ignore=shutil.ignore_patterns("tests"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, env=env, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    run("add", "-A")
    run("commit", "-q", "-m", "example state")
    prod = repo / "state" / "prod.yaml"
    text = prod.read_text()
    changed = text.replace("  billing_daily:\n    paused: false", "  billing_daily:\n    paused: true", 1)
    assert changed != text, "the example prod.yaml no longer has billing_daily paused: false"
    prod.write_text(changed)
    run("commit", "-q", "-am", "pause one more")
    return repo


def run_case(repo: pathlib.Path, argv: list[str]) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAUSECTL", "GITHUB", "CI"))}
    env.update({"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb", "TZ": "UTC"})
    p = subprocess.run([sys.executable, "-m", "reconciler", *argv, "--state", "state"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=120)
    # generated_at is the wall clock of the run: the one field that may differ
    stdout = re.sub(r'"generated_at": "[^"]*"', '"generated_at": "<now>"', p.stdout)
    return p.returncode, stdout, p.stderr


def main() -> None:
    out = HERE / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        repo = build_repo(pathlib.Path(tmp))
        for name, argv in cases():
            rc, stdout, stderr = run_case(repo, argv)
            (out / name).write_text(f"exit {rc}\n--- stdout\n{stdout}--- stderr\n{stderr}")
    print(f"wrote {len(cases())} golden files to {out}")


if __name__ == "__main__":
    main()
