"""apply, rollback, drift, export, restore: the commands that read or change live Airflow.

Each parses its flags, calls one operation (reconciler/operations.py, shared with the Airflow
operator), and ends in the publish stage (operate/publish.py: notify, metrics, render)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.core.errors import PausectlError
from reconciler.cli.common import (confirm_live, confirmer, exit_with, finish_apply, force_option,
                                   format_option, metrics_option, output_path,
                                   rollout_override_options, run_flags, run_options,
                                   state_option, yes_option)


@click.command()
@click.argument("env")
@state_option
@click.option("--plan", "plan_file", metavar="FILE", help="Apply this saved plan (re-checked first).")
@yes_option
@rollout_override_options
@click.option("--allow-mass-change", is_flag=True, help="Allow more than safety.max_changes.")
@click.option("--allow-catchup", is_flag=True,
              help="Allow unpauses creating more catch-up runs than safety.max_catchup_runs.")
@click.option("--resume", is_flag=True, help="Continue the last (or --journal) interrupted apply.")
@click.option("--journal", "journal_file", metavar="FILE", help="Journal for --resume/--gate-only.")
@click.option("--gate-only", is_flag=True, help="Re-evaluate the health gate of the last apply.")
@click.option("--no-gates", is_flag=True, help="Skip health gates (an emergency lever).")
@click.option("--force-unlock", is_flag=True, help="Remove the environment's apply lock and exit.")
@click.option("--mirror-journal", is_flag=True,
              help="Also keep the journal in an Airflow Variable (for runners without disks).")
@metrics_option
def apply(env, state_dir, plan_file, yes, batches, canary, wait_seconds, min_runs,
          max_failed_runs, gate_timeout, on_gate_failure, allow_mass_change, allow_catchup,
          resume, journal_file, gate_only, no_gates, force_unlock, mirror_journal,
          metrics_file):
    """Apply the plan for ENV in canary batches with health gates, a journal and a lock.

    The rollout (batches, canary, gate, on_gate_failure) comes from pausectl.yaml; the flags
    override it for this run (and for its --resume)."""
    metrics_file = output_path(metrics_file, "--metrics-file", False, state_dir)
    from reconciler import operations as ops
    from reconciler.apply.journal import Journal
    from reconciler.engine import load, open_backend
    from reconciler.operate.publish import publish_cli
    from reconciler.plan.render import plan_text

    ctx = load(state_dir, env)
    if not (force_unlock or gate_only):
        from reconciler.apply.journal import check_journal_dir
        check_journal_dir()       # the output rules, before the lock and any change
    opts = run_options(batches, canary, wait_seconds, min_runs, max_failed_runs, gate_timeout,
                       on_gate_failure, no_gates, allow_mass_change=allow_mass_change,
                       allow_catchup=allow_catchup, mirror_journal=mirror_journal)
    saved = ops.load_saved(plan_file) if plan_file else None
    backend = open_backend(ctx.cfg, env)
    try:
        if force_unlock:
            from reconciler.apply.lock import force_unlock as unlock
            who = unlock(backend, env)
            click.echo(f"removed lock held by {who}" if who else f"{env} was not locked")
            return
        if resume or gate_only:
            journal = (Journal.load(Path(journal_file), backend)
                       if journal_file else Journal.latest(env, backend))
            if gate_only:
                _gate_only(ctx, backend, journal, opts)
                return
            applied = ops.resume_env(ctx, backend, journal, opts)
        else:
            applied = ops.apply_env(ctx, backend, opts, saved, show=plan_text,
                                    confirm=confirmer(yes))
    finally:
        backend.close()
    publish_cli(ctx.cfg, "apply", [applied.outcome(env)], metrics_file=metrics_file)
    if applied.plan is None or applied.plan.changes:
        finish_apply(applied.result, env)


def _gate_only(ctx, backend, journal, opts) -> None:
    """Re-check the health of what the journal's apply unpaused, now, without waiting."""
    from reconciler.operations import gate_only
    from reconciler.plan.records import JournalStatus
    gate, unpaused = gate_only(ctx, backend, journal, opts)
    click.echo(f"gate: {'passed' if gate['passed'] else 'FAILED'} ({gate['message']}) "
               f"for {len(unpaused)} DAG(s) of {journal.path}; {len(journal.data['dags'])} in "
               "the journal")
    if gate["passed"] and journal.status == JournalStatus.HALTED:
        click.echo(f"`pausectl apply {ctx.env} --resume` continues the halted apply")
    if not gate["passed"]:
        exit_with(3)


@click.command()
@click.argument("env")
@state_option
@click.option("--journal", "journal_file", metavar="FILE", help="Journal to undo (default: latest).")
@yes_option
def rollback(env, state_dir, journal_file, yes):
    """Undo an apply exactly: every DAG it changed goes back to its state before."""
    from reconciler.apply.executor import ApplyOptions, rollback_journal
    from reconciler.plan.records import JournalStatus
    from reconciler.engine import load, open_backend
    from reconciler.apply.journal import Journal
    ctx = load(state_dir, env)
    backend = open_backend(ctx.cfg, env)
    try:
        journal = Journal.load(Path(journal_file)) if journal_file else Journal.latest(env, backend)
        n = len(journal.started_dags()) if journal.status != JournalStatus.DONE else len(journal.data["dags"])
        confirm_live(yes, f"roll back {n} DAG(s) in {env} ({journal.path})")
        rollback_journal(ctx, backend, journal, ApplyOptions())
        click.echo(f"Rolled back {n} DAG(s) in {env} to their state before {journal.data['started']}.")
    finally:
        backend.close()


@click.command()
@click.argument("envs", nargs=-1, required=True)
@state_option
@format_option("text", "json", "markdown")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when drift is found.")
@metrics_option
def drift(envs, state_dir, fmt, detailed_exitcode, metrics_file):
    """Live changes not in git, with who made them, when and how."""
    metrics_file = output_path(metrics_file, "--metrics-file", False, state_dir)
    from reconciler.operate.drift import drift_markdown, drift_text
    from reconciler.operate.publish import publish_cli
    from reconciler.operations import drift_env
    from reconciler.plan.render import dump_json
    from reconciler.operate import fleet
    # every environment at once (a bounded thread per env), results in the order given;
    # read-only: environments on one Airflow as one user share its answers (shared.py)
    runs = fleet.run_envs(state_dir, envs, drift_env, jobs=fleet.DEFAULT_JOBS, read_only=True)
    outcomes = fleet.values(runs)
    cfg = runs[-1].cfg
    reports = [o.report for o in outcomes]

    def render() -> None:
        if fmt == "json":
            dump_json({"environments": reports})
        elif fmt == "markdown":
            sys.stdout.write(drift_markdown(reports))
        else:
            for r in reports:
                drift_text(r)
            if len(reports) > 1:
                fleet.summary_text(fleet.drift_summary(reports), sys.stdout)
    publish_cli(cfg, "drift", outcomes, metrics_file=metrics_file, render=render)
    if detailed_exitcode and any(r["drifted"] for r in reports):
        exit_with(2)


@click.command()
@click.argument("env")
@state_option
@click.option("--out", metavar="FILE", default=None, help="Write here instead of stdout.")
@format_option("json", "yaml", default="json")
@force_option
def export(env, state_dir, out, fmt, force):
    """Write ENV's live pause state: a snapshot (json) or a ready-to-commit <env>.yaml."""
    from reconciler.engine import load, open_backend
    from reconciler.operate.export import export_json, export_yaml
    real_out = output_path(out, "--out", force, state_dir)
    ctx = load(state_dir, env)
    backend = open_backend(ctx.cfg, env)
    try:
        live = backend.list_dags()
    finally:
        backend.close()
    text = export_json(env, live) if fmt == "json" else export_yaml(env, live)
    if out:
        from reconciler.live.snapshot import write_text_atomic
        try:
            write_text_atomic(Path(real_out), text)
        except OSError as e:
            raise PausectlError(f"--out: cannot write {out!r}: {e.strerror}") from None
        click.echo(f"exported {len(live)} DAG(s) of {env} to {out}", err=True)
    else:
        sys.stdout.write(text)


@click.command()
@click.argument("env")
@click.argument("file")
@state_option
@run_flags
@click.option("--allow-mass-change", is_flag=True, help="Allow more than safety.max_changes.")
@click.option("--from-env", "from_env", metavar="NAME", default=None,
              help="FILE is an export of environment NAME (not ENV): restore it into ENV.")
@click.option("--skip-missing", is_flag=True,
              help="Restore the DAGs that exist; list (not refuse) those FILE has and ENV lacks.")
def restore(env, file, state_dir, yes, batches, canary, wait_seconds, min_runs, max_failed_runs,
            gate_timeout, on_gate_failure, allow_mass_change, no_gates, from_env, skip_missing):
    """Put back the live pause state saved in FILE (from `pausectl export`).

    Applied like any plan (lock, journal, canary batches, health gates; `pausectl rollback`
    undoes it); the flags override pausectl.yaml's rollout for this run. An export of
    another environment needs --from-env; a DAG in FILE that ENV does not have is refused
    (nothing is changed) unless --skip-missing."""
    from reconciler.engine import load, open_backend
    from reconciler.operations import restore_env
    from reconciler.plan.records import ApplyKind, ApplyStatus
    from reconciler.plan.render import plan_text
    ctx = load(state_dir, env)
    from reconciler.apply.journal import check_journal_dir
    check_journal_dir()           # the output rules, before the lock and any change
    opts = run_options(batches, canary, wait_seconds, min_runs, max_failed_runs, gate_timeout,
                       on_gate_failure, no_gates, allow_mass_change=allow_mass_change,
                       kind=ApplyKind.RESTORE)
    backend = open_backend(ctx.cfg, env)
    try:
        plan, result = restore_env(ctx, backend, opts, file, skip_missing, from_env,
                                   show=plan_text, confirm=confirmer(yes))
    finally:
        backend.close()
    if result is None:
        notes = "".join(f", {n} {what}" for n, what in (
            (len(plan.skipped), "stale (not flipped)"), (len(plan.missing), "missing in "
             f"{env}"), (len(plan.unmanaged), f"in {env} but not in the file")) if n)
        click.echo(f"Nothing to restore: live {env} already matches the export {file} "
                   f"({plan.unchanged} DAG(s) in their saved state{notes}).")
        return
    if result.status == ApplyStatus.DONE:
        click.echo(f"Restore complete: {result.changed} DAG(s) of {env} put back to their "
                   f"state in {file}.")
        return
    finish_apply(result, env)
