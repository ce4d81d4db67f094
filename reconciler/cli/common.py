"""Options and helpers shared by commands."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from reconciler.core.errors import PausectlError

state_option = click.option(
    "--state", "state_dir", metavar="DIR", default=None, envvar="PAUSECTL_STATE",
    help="State repo directory (default: ./state).")


def format_option(*choices: str, default: str = "text"):
    return click.option("--format", "fmt", type=click.Choice(choices), default=default,
                        show_default=True, help="Output format.")


def metrics_option(f):
    return click.option("--metrics-file", "metrics_file", metavar="PATH", default=None,
                        help="Also write Prometheus metrics (text format) to PATH.")(f)


def force_option(f):
    return click.option("--force", "force", is_flag=True,
                        help="Allow --out/--metrics-file inside the state repo or onto a file "
                             "git tracks (never inside .git).")(f)


def output_path(path: str | None, option: str, force: bool, state_dir) -> str | None:
    """An output file given on the command line, checked before any work (paths.confine's
    output rules: not in .git; not inside the state repo or onto a tracked file unless
    --force; not a directory). Returns the real path to write."""
    if path is None:
        return None
    from pathlib import Path

    from reconciler.core.paths import confine, register_state_root
    root = Path(state_dir or "state")
    if root.is_dir():
        register_state_root(root)
    # a metrics file that cannot be written is a warning (metrics.write_metrics); only the
    # security rules are errors for it
    return str(confine(path, None, option=option, what="file", write=True, force=force,
                       policy_only=option == "--metrics-file"))


def at_option(f):
    return click.option("--at", "at", metavar="TIME", default=None,
                        help="Evaluate rules at this time (ISO 8601; default now).")(f)


def parse_at(at: str | None) -> datetime | None:
    if at is None:
        return None
    from reconciler.core.timeutil import TimeRangeError, parse_timestamp
    try:
        return parse_timestamp(at)
    except TimeRangeError as e:
        raise PausectlError(f"--at: {e}") from None
    except ValueError:
        raise PausectlError(f"--at: bad timestamp {at!r} (use ISO 8601, e.g. 2026-12-01T02:00:00Z)") from None


def exit_with(code: int) -> None:
    sys.stdout.flush()
    raise SystemExit(code)


class Bounded(click.ParamType):
    """A finite number within [lo, hi]: click's FloatRange lets `nan` through (every
    comparison with NaN is false) and `inf` wherever there is no maximum."""

    name = "number"

    def __init__(self, lo: float, hi: float, integer: bool = False):
        self.lo, self.hi, self.integer = lo, hi, integer

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = str(value)
        else:
            text = str(value).strip()
        try:
            v = int(text) if self.integer else float(text)
        except ValueError:
            self.fail(f"{value!r} is not {'an integer' if self.integer else 'a number'}",
                      param, ctx)
        if v != v or not (self.lo <= v <= self.hi):
            self.fail(f"{value!r} is not a finite number from {self.lo:g} to {self.hi:g}",
                      param, ctx)
        return v


_ROLLOUT_OVERRIDES = (
    click.option("--batches", metavar="LIST", default=None,
                 help='Override rollout.batches, e.g. "1,25%,100%".'),
    click.option("--canary", "canary", metavar="SELECTOR", multiple=True,
                 help="Override rollout.canary: tag:NAME, dag_id:GLOB or owner:NAME (repeatable)."),
    click.option("--wait-seconds", type=Bounded(0, 86400), default=None,
                 help="Override gate.wait_seconds."),
    click.option("--min-runs", type=Bounded(0, 100000, integer=True), default=None,
                 help="Override gate.min_runs."),
    click.option("--max-failed-runs", type=Bounded(0, 100000, integer=True), default=None,
                 help="Override gate.max_failed_runs."),
    click.option("--gate-timeout", type=Bounded(0, 86400), default=None,
                 help="Override gate.timeout_seconds."),
    click.option("--on-gate-failure", type=click.Choice(["rollback", "halt"]), default=None,
                 help="Override rollout.on_gate_failure."),
)


def rollout_override_options(f):
    """The per-run rollout and gate overrides shared by apply, restore and emergency recover."""
    for option in reversed(_ROLLOUT_OVERRIDES):
        f = option(f)
    return f


yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def run_flags(f):
    """--yes, the rollout overrides and --no-gates: the flags of restore and emergency recover."""
    f = click.option("--no-gates", is_flag=True, help="Skip health gates.")(f)
    return yes_option(rollout_override_options(f))


# ---- the apply family (apply, restore, emergency recover) -----------------------------------

def run_overrides(canary, wait_seconds, min_runs, max_failed_runs, gate_timeout,
                  on_gate_failure) -> dict:
    """This run's rollout overrides from the CLI flags (None: keep pausectl.yaml's)."""
    from reconciler.policy.selectors import parse_selector
    specs = []
    for text in canary or ():
        try:
            specs.append(parse_selector(text))
        except ValueError as e:
            raise PausectlError(f"--canary: {e}") from None
    return {"canary": specs or None, "wait_seconds": wait_seconds, "min_runs": min_runs,
            "max_failed_runs": max_failed_runs, "timeout_seconds": gate_timeout,
            "on_gate_failure": on_gate_failure}


def run_options(batches, canary, wait_seconds, min_runs, max_failed_runs, gate_timeout,
                on_gate_failure, no_gates, **extra):
    """ApplyOptions from the per-run rollout flags (apply, restore, emergency recover)."""
    from reconciler.apply.executor import ApplyOptions
    from reconciler.plan.render import is_tty
    from reconciler.plan.rollout import parse_batches
    return ApplyOptions(batches=parse_batches(batches) if batches else None,
                        rollout_overrides=run_overrides(canary, wait_seconds, min_runs,
                                                        max_failed_runs, gate_timeout,
                                                        on_gate_failure),
                        gates=not no_gates, progress=is_tty(sys.stderr), **extra)


def confirm_live(yes: bool, question: str, pipe_ok: bool = False) -> None:
    """The one confirmation of every command that changes live state (apply, restore,
    rollback, emergency pause/recover, hold, ...): `--yes` skips it; on a terminal it asks
    `question`, which names the count ("pause 624 DAGs in prod except 176"), default no, and
    `n` changes nothing (Abort: "aborted", exit 1). Without a terminal it refuses, unless
    `pipe_ok`: an emergency pause from a runbook script must not wait for a --yes."""
    from reconciler.core.sanitize import term
    from reconciler.plan.render import is_tty
    terminal = is_tty(sys.stdin) and is_tty(sys.stdout)
    if yes or (pipe_ok and not terminal):
        return
    if not terminal:
        raise PausectlError(f"refusing to {term(question)} without confirmation: not a "
                            "terminal (pass --yes in pipelines)")
    if not click.confirm(f"{term(question)}?", default=False, err=True):
        raise click.exceptions.Abort()


def confirmer(yes: bool, what: str = "Apply"):
    """confirm(plan) for the operations: `confirm_live` with the plan's counts."""
    def confirm(plan) -> None:
        pause = sum(c.action == "pause" for c in plan.changes)
        confirm_live(yes, f"{what.lower()} {len(plan.changes)} change(s) in {plan.environment} "
                          f"(pause {pause}, unpause {len(plan.changes) - pause})")
    return confirm


def finish_apply(result, env: str) -> None:
    """The closing line of an apply, and its exit code."""
    from reconciler.plan.records import ApplyStatus as S
    s = result.status
    msg = {S.DONE: f"Apply complete: {result.changed} DAG(s) changed in {env}.",
           S.NOTHING: "Nothing to do.",
           S.ROLLED_BACK: f"Gate failed: every DAG changed in {env} was put back (rolled back).",
           S.HALTED: f"Apply halted in {env} (see above); journal kept for --resume or rollback.",
           S.FAILED: f"Apply failed in {env} with {len(result.errors)} error(s); journal kept."}[s]
    click.echo(msg, err=s not in (S.DONE, S.NOTHING))
    if result.exit_code:
        exit_with(result.exit_code)
