"""validate, plan, explain."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.core.errors import PausectlError
from reconciler.state.gitref import desired_state
from reconciler.cli.common import (at_option, exit_with, force_option, format_option, metrics_option,
                     output_path, parse_at, state_option)


@click.command()
@click.argument("paths", nargs=-1)
@state_option
@format_option("text", "json", "github")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--ref", "ref", metavar="GITREF", default=None,
              help="Validate the state repo as of this git ref, without checking it out.")
def validate(paths, state_dir, fmt, strict, ref):
    """Check the state repo (or only PATHS): JSON Schema and semantic checks."""
    from reconciler.plan.render import problems_out
    from reconciler.state.loader import find_root
    from reconciler.operate.validate import validate_repo

    with desired_state(state_dir, ref) as (root_dir, _):
        root = find_root(root_dir)
        wanted = _paths_at_ref(paths, state_dir, root) if ref else list(paths)
        problems = validate_repo(root, wanted or None)
    errors = sum(p["severity"] == "error" for p in problems)
    warnings = len(problems) - errors
    problems_out(problems, fmt)
    if fmt == "text":
        click.echo(f"{errors} error(s), {warnings} warning(s)" if problems else "state repo is valid",
                   err=bool(problems))
    exit_with(1 if errors or (strict and warnings) else 0)


def _paths_at_ref(paths, state_dir, root: Path) -> list[str]:
    """PATHS (files of the working tree's state dir) as files of the materialised ref."""
    state = Path(state_dir or "state").resolve()
    out = []
    for p in paths:
        try:
            rel = Path(p).resolve().relative_to(state)
        except ValueError:
            raise PausectlError(f"{p} is not a file of the state repo {state_dir or 'state'}") from None
        if not (root / rel).is_file():
            raise PausectlError("file not found at the given --ref", p)
        out.append(str(root / rel))
    return out


def write_plan_file(plan, out: str) -> None:
    from reconciler.live.snapshot import write_json_atomic
    try:
        write_json_atomic(Path(out), plan.to_json())
    except OSError as e:
        raise PausectlError(f"--out: cannot write plan: {e.strerror}") from None


def render_plan(plan, fmt: str) -> None:
    from reconciler.plan.render import dump_json, plan_markdown, plan_text
    if fmt == "json":
        dump_json(plan.to_json())
    elif fmt == "markdown":
        sys.stdout.write(plan_markdown(plan))
    else:
        plan_text(plan)


@click.command()
@click.argument("env")
@state_option
@at_option
@click.option("--ref", "ref", metavar="GITREF", default=None,
              help="Read the desired state at this git ref, without checking it out.")
@format_option("text", "json", "markdown")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there are no changes, 2 when there are, 1 on error.")
@click.option("--out", metavar="FILE", default=None, help="Save the plan for a later apply.")
@click.option("--snapshot", "snapshot", metavar="FILE", default=None,
              help="Plan against this snapshot file instead of the configured backend.")
@metrics_option
@force_option
def plan(env, state_dir, at, ref, fmt, detailed_exitcode, out, snapshot, metrics_file, force):
    """Show what apply would change in ENV: desired (git) against live (backend)."""
    from reconciler.engine import load, open_backend, plan_env
    at_dt = parse_at(at)
    out = output_path(out, "--out", force, state_dir)
    metrics_file = output_path(metrics_file, "--metrics-file", force, state_dir)
    with desired_state(state_dir, ref) as (root, desired_ref):
        ctx = load(root, env, at_dt)
        backend = snapshot_backend(env, snapshot) if snapshot else open_backend(ctx.cfg, env)
        try:
            p, resolution, live = plan_env(ctx, backend, at=at_dt, desired_ref=desired_ref)
        finally:
            backend.close()
    if out:
        write_plan_file(p, out)
    from reconciler.operate.publish import Outcome, publish_cli
    publish_cli(ctx.cfg, "plan", [Outcome(env, p, live, resolution)], metrics_file=metrics_file,
                render=lambda: render_plan(p, fmt))
    if p.conflicts:
        click.echo(f"error: {len(p.conflicts)} conflict(s) with tie 'error'; resolve them in git",
                   err=True)
        exit_with(1)
    exit_with(2 if detailed_exitcode and p.has_changes else 0)


def snapshot_backend(env: str, path: str):
    from reconciler.live.snapshot import SnapshotBackend
    return SnapshotBackend(env, Path(path), path)


@click.command()
@click.argument("env")
@click.argument("dag_id")
@state_option
@at_option
@format_option("text", "json")
@click.option("--snapshot", "snapshot", metavar="FILE", default=None,
              help="Use this snapshot file as the live state.")
def explain(env, dag_id, state_dir, at, fmt, snapshot):
    """Every rule that matches DAG_ID in ENV, which one wins, and why."""
    from reconciler.engine import load, open_backend
    from reconciler.observe import observe
    from reconciler.operate.explain import explain_dag, explain_text
    from reconciler.plan.render import dump_json
    from reconciler.core.timeutil import utcnow
    at_dt = parse_at(at) or utcnow()
    ctx = load(state_dir, env, at_dt)
    backend = snapshot_backend(env, snapshot) if snapshot else open_backend(ctx.cfg, env)
    try:
        result = explain_dag(ctx, observe(ctx, backend, at_dt, events_for=None), dag_id, at_dt)
    finally:
        backend.close()
    if fmt == "json":
        dump_json(result)
    else:
        explain_text(result)
