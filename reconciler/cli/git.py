"""diff, history, promote: the commands that read the state repo's git history."""

from __future__ import annotations

import click

from reconciler.core.errors import PausectlError
from reconciler.cli.common import (at_option, exit_with, force_option, format_option, output_path, parse_at,
                     state_option)


@click.command()
@click.argument("base")
@click.argument("head")
@click.argument("envs", nargs=-1)
@state_option
@at_option
@format_option("text", "json", "markdown")
@click.option("--offline", is_flag=True,
              help="Do not read live Airflow: compare only DAG ids named by rules.")
@click.option("--out", metavar="FILE", default=None, help="Also write the diff as JSON here.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when the desired state does not change, 2 when it does.")
@force_option
def diff(base, head, envs, state_dir, at, fmt, offline, out, detailed_exitcode, force):
    """What changing the state repo from BASE to HEAD does, per environment and DAG.

    Without ENV, every environment whose files changed. Each DAG whose desired state or
    deciding rule differs is listed (old rule -> new rule, reason, owner), with what `apply`
    would do at HEAD when the environment's backend answers.
    """
    from reconciler.operate.diff import compute_diff
    from reconciler.operate.diff_render import render_diff
    at_dt = parse_at(at)
    out = output_path(out, "--out", force, state_dir)
    result = compute_diff(state_dir, base, head, list(envs) or None, at_dt, offline)
    if out:
        import json
        from pathlib import Path

        from reconciler.live.snapshot import write_text_atomic
        try:
            write_text_atomic(Path(out), json.dumps(result.to_json(), indent=2, default=str)
                              + "\n")
        except OSError as e:
            raise PausectlError(f"--out: cannot write diff: {e.strerror}") from None
    render_diff(result, fmt)
    if any(e.error for e in result.environments):
        exit_with(1)
    exit_with(2 if detailed_exitcode and result.total else 0)


@click.command()
@click.argument("env")
@click.argument("dag_id", required=False)
@state_option
@format_option("text", "json")
@click.option("--ref", "ref", metavar="GITREF", default="HEAD", show_default=True,
              help="Read git history reachable from this ref.")
@click.option("--max-commits", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Look at most at this many commits touching the environment's files.")
@click.option("--offline", is_flag=True, help="Do not read Airflow's audit log.")
def history(env, dag_id, state_dir, fmt, ref, max_commits, offline):
    """Git history of ENV's desired state joined with Airflow's audit log.

    With DAG_ID: every commit that changed the rule deciding it or its desired state, every
    live pause/unpause event, and one answer to "who paused this and why".
    """
    from reconciler.operate.history import build_history, history_text
    from reconciler.plan.render import dump_json
    h = build_history(state_dir, env, dag_id, ref=ref, max_commits=max_commits, offline=offline)
    if fmt == "json":
        dump_json(h)
    else:
        history_text(h)


@click.command()
@click.option("--from", "source", metavar="ENV", required=True, help="Source environment.")
@click.option("--to", "target", metavar="ENV", default=None,
              help="Target environment (default: the source's promote_to).")
@click.option("--dags", "dags", metavar="NAMES", default=None,
              help="Only these promotable rules: dag ids / group names, comma-separated.")
@click.option("--branch", metavar="NAME", default=None,
              help="Branch to create (default: pausectl/promote-FROM-to-TO-<time>).")
@click.option("--since", metavar="GITREF", default=None,
              help="Look for target conflicts since the merge-base with this ref (used when "
                   "no earlier promotion commit exists).")
@click.option("--dry-run", is_flag=True, help="Check and show everything; write nothing.")
@click.option("--checkout", is_flag=True, help="Switch to the new branch afterwards.")
@state_option
@format_option("text", "json")
def promote(source, target, dags, branch, since, dry_run, checkout, state_dir, fmt):
    """Carry rules marked `promote: true` from one environment's file into the next.

    The target file keeps its comments, key order and formatting (only the promoted entries'
    lines change). Gates first: no conflicting change in the target since the last promotion,
    the source ran the change for promotion.soak_hours without failed runs, and the target's
    plan passes the safety guards. The result is one commit on a new branch.
    Exit 0 promoted (or nothing to do), 1 blocked by a gate or a conflict.
    """
    from reconciler.promote.flow import promote as run
    from reconciler.promote.render import promotion_text
    from reconciler.plan.render import dump_json
    names = [d.strip() for d in dags.split(",") if d.strip()] if dags else None
    res = run(state_dir, source, target, names, branch=branch, dry_run=dry_run, since=since,
              checkout=checkout)
    if fmt == "json":
        dump_json(res.to_json())
    else:
        promotion_text(res)
    exit_with(1 if res.failures else 0)
