"""schedule, lint, codeowners: pause policies (windows, budgets, cascades, tenants, hygiene)."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.core.errors import PausectlError
from reconciler.cli.common import at_option, exit_with, format_option, parse_at, state_option


def _open(ctx, snapshot: str | None):
    from reconciler.engine import open_backend
    if snapshot:
        from reconciler.live.snapshot import SnapshotBackend
        return SnapshotBackend(ctx.env, Path(snapshot), snapshot)
    return open_backend(ctx.cfg, ctx.env)


snapshot_option = click.option("--snapshot", "snapshot", metavar="FILE", default=None,
                               help="Use this snapshot file as the live state.")


@click.command()
@click.argument("env")
@state_option
@at_option
@click.option("--next", "horizon", metavar="DURATION", default="7d", show_default=True,
              help="How far ahead to look (e.g. 7d, 36h, 1d12h).")
@format_option("text", "json")
@snapshot_option
def schedule(env, state_dir, at, horizon, fmt, snapshot):
    """Upcoming pause/unpause transitions in ENV: window and budget starts and ends, `from`
    and `until`, per DAG and rule (live DAGs from the backend or --snapshot)."""
    from reconciler.observe import observe
    from reconciler.engine import load
    from reconciler.plan.render import dump_json
    from reconciler.policy.schedule import compute, schedule_text
    from reconciler.core.timeutil import parse_duration, utcnow
    try:
        span = parse_duration(horizon)
    except ValueError as e:
        raise PausectlError(f"--next: {e}") from None
    start = parse_at(at) or utcnow().replace(microsecond=0)
    ctx = load(state_dir, env, start)
    backend = _open(ctx, snapshot)
    try:
        obs = observe(ctx, backend, start, events_for=None)
        result = compute(ctx.cfg, ctx.state, list(obs.live), start, span, obs.emergency,
                         list(obs.edges))
    finally:
        backend.close()
    if fmt == "json":
        dump_json(result.to_json())
    else:
        schedule_text(result)


@click.command()
@click.argument("env")
@state_option
@at_option
@format_option("text", "json", "github")
@snapshot_option
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
def lint(env, state_dir, at, fmt, snapshot, strict):
    """Pause anti-patterns in ENV: forgotten pauses, placeholders, no tickets, DAGs to delete,
    unknown live pauses, pauses after failures, expired rules, rules matching nothing."""
    from reconciler.engine import load
    from reconciler.observe import PAUSED, observe, resolve
    from reconciler.operate.lint import GitAges, lint_env, lint_github, lint_text
    from reconciler.plan.render import dump_json
    from reconciler.core.timeutil import utcnow
    at_dt = parse_at(at) or utcnow()
    ctx = load(state_dir, env, at_dt)
    backend = _open(ctx, snapshot)
    try:
        obs = observe(ctx, backend, at_dt, events_for=PAUSED)
        result = lint_env(ctx.cfg, ctx.state, list(obs.live), resolve(ctx, obs, at_dt), backend,
                          at_dt, GitAges(), events=obs.events)
    finally:
        backend.close()
    if fmt == "json":
        dump_json(result.to_json())
    elif fmt == "github":
        lint_github(result)
    else:
        lint_text(result)
    c = result.counts()
    exit_with(1 if c["error"] or (strict and c["warning"]) else 0)


@click.command()
@state_option
@click.option("--team-prefix", default="@", show_default=True, metavar="PREFIX",
              help="Prefix for tenants without `team:`, e.g. @acme/ gives @acme/<tenant>.")
def codeowners(state_dir, team_prefix):
    """CODEOWNERS lines for the tenants' state files (pausectl.yaml `tenants:`)."""
    from reconciler.state.loader import find_root, load_config
    from reconciler.policy.tenants import codeowners as lines
    cfg = load_config(find_root(state_dir))
    if not cfg.tenants:
        raise PausectlError("no tenants in pausectl.yaml")
    for line in lines(cfg, team_prefix):
        click.echo(line)
