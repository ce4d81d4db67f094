"""Options and helpers shared by commands."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from ..errors import PausectlError

state_option = click.option(
    "--state", "state_dir", metavar="DIR", default=None, envvar="PAUSECTL_STATE",
    help="State repo directory (default: ./state).")


def format_option(*choices: str, default: str = "text"):
    return click.option("--format", "fmt", type=click.Choice(choices), default=default,
                        show_default=True, help="Output format.")


def metrics_option(f):
    return click.option("--metrics-file", "metrics_file", metavar="PATH", default=None,
                        help="Also write Prometheus metrics (text format) to PATH.")(f)


def at_option(f):
    return click.option("--at", "at", metavar="TIME", default=None,
                        help="Evaluate rules at this time (ISO 8601; default now).")(f)


def parse_at(at: str | None) -> datetime | None:
    if at is None:
        return None
    from ..timeutil import parse_timestamp
    try:
        return parse_timestamp(at)
    except ValueError:
        raise PausectlError(f"--at: bad timestamp {at!r} (use ISO 8601, e.g. 2026-12-01T02:00:00Z)") from None


def exit_with(code: int) -> None:
    sys.stdout.flush()
    raise SystemExit(code)


_ROLLOUT_OVERRIDES = (
    click.option("--batches", metavar="LIST", default=None,
                 help='Override rollout.batches, e.g. "1,25%,100%".'),
    click.option("--canary", "canary", metavar="SELECTOR", multiple=True,
                 help="Override rollout.canary: tag:NAME, dag_id:GLOB or owner:NAME (repeatable)."),
    click.option("--wait-seconds", type=click.FloatRange(min=0), default=None,
                 help="Override gate.wait_seconds."),
    click.option("--min-runs", type=click.IntRange(min=0), default=None,
                 help="Override gate.min_runs."),
    click.option("--max-failed-runs", type=click.IntRange(min=0), default=None,
                 help="Override gate.max_failed_runs."),
    click.option("--gate-timeout", type=click.FloatRange(min=0), default=None,
                 help="Override gate.timeout_seconds."),
    click.option("--on-gate-failure", type=click.Choice(["rollback", "halt"]), default=None,
                 help="Override rollout.on_gate_failure."),
)


def rollout_override_options(f):
    """The per-run rollout and gate overrides shared by apply and emergency recover."""
    for option in reversed(_ROLLOUT_OVERRIDES):
        f = option(f)
    return f
