"""`pausectl lint ENV`: pause anti-patterns, each with an id, a severity, a message and a fix.

| id | default | finds |
|---|---|---|
| forgotten-pause | warning | a permanent pause (no `until`, no windows/budget) older than `forgotten_pause_days` (30) |
| missing-reason | warning | a pause whose reason or owner is a placeholder (TODO, tbd, n/a, -, ...) |
| missing-ticket | info | a permanent pause without a `ticket` |
| delete-candidate | warning | a permanent pause of a DAG with no run for `no_runs_days` (90): delete the DAG |
| unknown-live-pause | warning | a DAG paused in Airflow that no rule in git knows (with `defaults.unmanaged: report`) |
| pause-after-failure | warning | a DAG paused by hand within `failure_window_hours` (24) after a failed run |
| expired-until | warning | a rule whose `until` has passed, still in the file |
| matches-nothing | warning | a rule that matches no DAG in Airflow |
| auto-paused | warning | a DAG Airflow paused by itself after failed runs (max_consecutive_failed_dag_runs) |
| renewed-hold | warning | a `pausectl hold` renewed more than `max_hold_renewals` (2) times |

A rule's age is how long its `paused: true` line has been in git (`git blame` of that line,
committer time; lines not committed yet are new). Outside git, the newest pause event in
Airflow's audit log stands in. Without either the rule is not judged. `delete-candidate` and
`pause-after-failure` need run history and the audit log, which snapshot backends do not have:
they are listed as skipped there.

Configuration: `lint:` in pausectl.yaml (`disable: [ids]`, `severity: {id: error|warning|info}`,
`forgotten_pause_days`, `no_runs_days`, `failure_window_hours`), and `lint: {disable: [ids]}` in
any state file, which silences those ids for the rules in that file (and, in the environment's
own file, for findings about no rule).

One module per concern: lint_config (rules, settings, the run), lint_age (git blame),
lint_git (rules about the rules in git), lint_live (rules about live Airflow).
"""

from __future__ import annotations

import sys
from datetime import datetime

from reconciler.operate.lint_age import GitAges
from reconciler.operate.lint_config import (CONFIG_FILE, RULES, SEVERITIES, Finding, Lint,
                                            LintResult)
from reconciler.operate.lint_git import check_rules
from reconciler.operate.lint_live import (auto_paused, delete_candidate, pause_after_failure,
                                          renewed_hold, unknown_live_pause)
from reconciler.policy.resolve import Resolution
from reconciler.state.loader import Config, EnvState

__all__ = ["GitAges", "Finding", "LintResult", "RULES", "lint_env", "lint_text", "lint_github"]


def lint_env(cfg: Config, state: EnvState, live: list, res: Resolution, backend,
             at: datetime, ages: GitAges | None = None, events=None) -> LintResult:
    """Lint one environment. `events`: the audit events of its paused DAGs, when an
    observation read them (observe.PAUSED); else they are read from `backend` when needed."""
    lint = Lint(cfg, state, live, res, backend, at, ages or GitAges(), events)
    check_rules(lint)
    unknown_live_pause(lint)
    auto_paused(lint)
    delete_candidate(lint)
    pause_after_failure(lint)
    renewed_hold(lint)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    lint.result.findings.sort(key=lambda f: (order[f.severity], f.file or "~", f.line or 0,
                                             f.id))
    return lint.result


# ---- output --------------------------------------------------------------------------------

def lint_text(result: LintResult, stream=None) -> None:
    w = (stream or sys.stdout).write
    for f in result.findings:
        loc = f"{f.file}:{f.line}: " if f.file and f.line else (f"{f.file}: " if f.file else "")
        w(f"{loc}{f.severity} [{f.id}] {f.message}\n    fix: {f.fix}\n")
    for s in result.skipped:
        w(f"skipped {s}\n")
    c = result.counts()
    if result.findings:
        w(f"lint {result.environment}: {c['error']} error(s), {c['warning']} warning(s), "
          f"{c['info']} info\n")
    else:
        w(f"lint {result.environment}: clean\n")


def lint_github(result: LintResult, stream=None) -> None:
    """One annotation per finding; every value escaped for its place (sanitize.gh_command)."""
    from reconciler.core.sanitize import emit_command, gh_command
    stream = stream or sys.stdout
    for f in result.findings:
        level = {"error": "error", "warning": "warning", "info": "notice"}[f.severity]
        emit_command(stream, gh_command(level, f"{f.message}. Fix: {f.fix}", file=f.file,
                                        line=f.line, title=f"pausectl lint {f.id}"))


def config_file(cfg: Config) -> str:
    return cfg.rel(cfg.root / CONFIG_FILE)
