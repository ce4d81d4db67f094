"""apply, rollback, drift, export, restore: the commands that read or change live Airflow."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from reconciler.core.errors import PausectlError
from reconciler.cli.common import (exit_with, force_option, format_option, metrics_option, output_path,
                     rollout_override_options, state_option)


def _confirm(plan, yes: bool) -> None:
    from reconciler.plan.render import is_tty
    if yes:
        return
    if not (is_tty(sys.stdin) and is_tty(sys.stdout)):
        raise PausectlError("refusing to apply without confirmation: not a terminal "
                            "(pass --yes in pipelines)")
    if not click.confirm(f"Apply {len(plan.changes)} change(s) to {plan.environment}?",
                         default=False):
        raise click.exceptions.Abort()


def _compare_saved(saved, fresh) -> None:
    """Refuse a saved plan whose changes no longer match what a fresh plan would do."""
    if saved.environment != fresh.environment:
        raise PausectlError(f"plan file is for {saved.environment}, not {fresh.environment}")
    if saved.change_key() == fresh.change_key():
        return
    from deepdiff import DeepDiff
    diff = DeepDiff(dict(saved.change_key()), dict(fresh.change_key()), verbose_level=2)
    parts = []
    for kind, label in (("dictionary_item_added", "now also"), ("dictionary_item_removed",
                        "no longer"), ("values_changed", "changed")):
        items = diff.get(kind) or {}
        if items:
            keys = [k.split("['", 1)[-1].rstrip("']") for k in items]
            parts.append(f"{label}: {', '.join(sorted(keys)[:5])}"
                         + (" ..." if len(keys) > 5 else ""))
    raise PausectlError("live state changed since the plan was made (" + "; ".join(parts)
                        + "); run `pausectl plan` again")


@click.command()
@click.argument("env")
@state_option
@click.option("--plan", "plan_file", metavar="FILE", help="Apply this saved plan (re-checked first).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@rollout_override_options
@click.option("--allow-mass-change", is_flag=True, help="Allow more than safety.max_changes.")
@click.option("--resume", is_flag=True, help="Continue the last (or --journal) interrupted apply.")
@click.option("--journal", "journal_file", metavar="FILE", help="Journal for --resume/--gate-only.")
@click.option("--gate-only", is_flag=True, help="Re-evaluate the health gate of the last apply.")
@click.option("--no-gates", is_flag=True, help="Skip health gates (an emergency lever).")
@click.option("--force-unlock", is_flag=True, help="Remove the environment's apply lock and exit.")
@click.option("--mirror-journal", is_flag=True,
              help="Also keep the journal in an Airflow Variable (for runners without disks).")
@metrics_option
def apply(env, state_dir, plan_file, yes, batches, canary, wait_seconds, min_runs,
          max_failed_runs, gate_timeout, on_gate_failure, allow_mass_change, resume,
          journal_file, gate_only, no_gates, force_unlock, mirror_journal, metrics_file):
    """Apply the plan for ENV in canary batches with health gates, a journal and a lock.

    The rollout (batches, canary, gate, on_gate_failure) comes from pausectl.yaml; the flags
    override it for this run (and for its --resume)."""
    metrics_file = output_path(metrics_file, "--metrics-file", False, state_dir)
    from reconciler.apply.executor import apply_plan, resume as resume_apply, rollout_of
    from reconciler.engine import load, open_backend, plan_env
    from reconciler.apply.journal import Journal
    from reconciler.plan.model import Plan
    from reconciler.plan.render import plan_text
    from reconciler.plan.rollout import batches_json, plan_batches

    ctx = load(state_dir, env)
    if not (force_unlock or gate_only):
        from reconciler.apply.journal import check_journal_dir
        check_journal_dir()       # the output rules, before the lock and any change
    opts = run_options(batches, canary, wait_seconds, min_runs, max_failed_runs, gate_timeout,
                       on_gate_failure, no_gates, allow_mass_change=allow_mass_change,
                       mirror_journal=mirror_journal)
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
            t0 = time.monotonic()
            result = resume_apply(ctx, backend, journal, opts)
            _report_apply(ctx, env, None, None, None, result, time.monotonic() - t0,
                          metrics_file)
            _finish(result, env)
            return
        saved = None
        if plan_file:
            try:
                from reconciler.core.safejson import load_file
                saved = Plan.from_json(load_file(plan_file, option="--plan", what="plan"))
            except FileNotFoundError:  # pragma: no cover (load_file says "not found")
                raise PausectlError("plan file not found", plan_file) from None
            except (ValueError, KeyError, TypeError) as e:
                raise PausectlError(f"not a pausectl plan ({e})", plan_file) from None
        from reconciler.apply.executor import check_guards
        from reconciler.core.killpoint import killpoint
        from reconciler.apply.lock import EnvLock
        # lock first, then plan under it: no other apply can move live state in between
        t0 = time.monotonic()
        with EnvLock(backend, env, log=opts.log) as lock:
            killpoint("after_lock")
            plan, resolution, live = plan_env(ctx, backend)
            if saved is not None:
                _compare_saved(saved, plan)
            plan.batches = batches_json(plan_batches(plan.changes, rollout_of(ctx, opts), live))
            plan_text(plan)
            if not plan.changes:
                _report_apply(ctx, env, plan, live, resolution, None, time.monotonic() - t0,
                              metrics_file)
                return
            check_guards(ctx, plan, opts)
            _confirm(plan, yes)
            result = apply_plan(ctx, backend, plan, opts, live=live, lock=lock)
        _report_apply(ctx, env, plan, live, resolution, result, time.monotonic() - t0,
                      metrics_file)
        _finish(result, env)
    finally:
        backend.close()


def _report_apply(ctx, env, plan, live, resolution, result, seconds, metrics_file) -> None:
    """Notifications and the metrics file of an apply; never changes its outcome."""
    from reconciler.operate.notify import notify_apply, warn
    warnings = []
    status = result.status if result is not None else "nothing"
    if result is not None:
        warnings += notify_apply(ctx.cfg, env, plan, status, result.changed, result.gates,
                                 result.errors)
    if metrics_file:
        from reconciler.operate.metrics import write_metrics

        def observe(m):
            if plan is not None:
                m.observe_plan(env, plan, live, resolution, applied=status == "done")
            m.observe_apply(env, status, seconds, result.gates if result is not None else [])
        warnings += write_metrics(metrics_file, "apply", observe)
    warn(warnings)


def _finish(result, env: str) -> None:
    s = result.status
    msg = {"done": f"Apply complete: {result.changed} DAG(s) changed in {env}.",
           "nothing": "Nothing to do.",
           "rolled_back": f"Gate failed: every DAG changed in {env} was put back (rolled back).",
           "halted": f"Apply halted in {env} (see above); journal kept for --resume or rollback.",
           "failed": f"Apply failed in {env} with {len(result.errors)} error(s); journal kept."}[s]
    click.echo(msg, err=s not in ("done", "nothing"))
    if result.exit_code:
        exit_with(result.exit_code)


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


def _gate_only(ctx, backend, journal, opts) -> None:
    """Re-check the health of what the journal's apply unpaused, now, without waiting."""
    from reconciler.apply.gates import evaluate, gate_settings
    from reconciler.plan.rollout import effective_rollout
    from reconciler.core.timeutil import parse_timestamp
    dags = journal.data["dags"]
    unpaused = sorted(d for d, v in journal.started_dags().items() if v["after"] is False)
    since = parse_timestamp(journal.data["started"])
    rollout = effective_rollout(journal.data.get("rollout") or ctx.cfg.rollout_for(ctx.env),
                                opts.rollout_overrides)
    gate = evaluate(backend, unpaused, since, gate_settings(rollout), wait=False)
    journal.data.setdefault("gate_checks", []).append(gate)
    journal.save()
    click.echo(f"gate: {'passed' if gate['passed'] else 'FAILED'} ({gate['message']}) "
               f"for {len(unpaused)} DAG(s) of {journal.path}; {len(dags)} in the journal")
    if gate["passed"] and journal.status == "halted":
        click.echo(f"`pausectl apply {ctx.env} --resume` continues the halted apply")
    if not gate["passed"]:
        exit_with(3)


@click.command()
@click.argument("env")
@state_option
@click.option("--journal", "journal_file", metavar="FILE", help="Journal to undo (default: latest).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def rollback(env, state_dir, journal_file, yes):
    """Undo an apply exactly: every DAG it changed goes back to its state before."""
    from reconciler.apply.executor import ApplyOptions, rollback_journal
    from reconciler.engine import load, open_backend
    from reconciler.apply.journal import Journal
    from reconciler.plan.render import is_tty
    ctx = load(state_dir, env)
    backend = open_backend(ctx.cfg, env)
    try:
        journal = Journal.load(Path(journal_file)) if journal_file else Journal.latest(env, backend)
        n = len(journal.started_dags()) if journal.status != "done" else len(journal.data["dags"])
        if not yes:
            if not (is_tty(sys.stdin) and is_tty(sys.stdout)):
                raise PausectlError("refusing to roll back without confirmation (pass --yes)")
            click.confirm(f"Roll back {n} DAG(s) in {env} ({journal.path})?", abort=True)
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
    from reconciler.operate.drift import drift_for, drift_text, drift_markdown
    from reconciler.engine import load, open_backend
    from reconciler.operate.notify import notify_drift, warn
    from reconciler.plan.render import dump_json
    reports, warnings = [], []
    metrics = None
    if metrics_file:
        from reconciler.operate.metrics import Metrics
        metrics = Metrics("drift")
    for env in envs:
        ctx = load(state_dir, env)
        backend = open_backend(ctx.cfg, env)
        try:
            report, plan, live, resolution = drift_for(ctx, backend)
        finally:
            backend.close()
        reports.append(report)
        if metrics is not None:
            metrics.observe_plan(env, plan, live, resolution)
            metrics.observe_drift(env, report)
        warnings += notify_drift(ctx.cfg, report)
    if metrics is not None:
        try:
            metrics.write(metrics_file)
        except PausectlError as e:
            warnings.append(str(e))
    warn(warnings)
    if fmt == "json":
        dump_json({"environments": reports})
    elif fmt == "markdown":
        sys.stdout.write(drift_markdown(reports))
    else:
        for r in reports:
            drift_text(r)
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
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@rollout_override_options
@click.option("--allow-mass-change", is_flag=True, help="Allow more than safety.max_changes.")
@click.option("--no-gates", is_flag=True, help="Skip health gates.")
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
    from reconciler.apply.executor import apply_plan, rollout_of
    from reconciler.apply.emergency import read_marker
    from reconciler.engine import load, open_backend
    from reconciler.operate.export import restore_plan
    from reconciler.plan.render import plan_text
    from reconciler.plan.rollout import batches_json, plan_batches
    ctx = load(state_dir, env)
    from reconciler.apply.journal import check_journal_dir
    check_journal_dir()           # the output rules, before the lock and any change
    opts = run_options(batches, canary, wait_seconds, min_runs, max_failed_runs, gate_timeout,
                       on_gate_failure, no_gates, allow_mass_change=allow_mass_change,
                       kind="restore")
    backend = open_backend(ctx.cfg, env)
    try:
        live = backend.list_dags()
        plan = restore_plan(env, Path(file), live, skip_missing=skip_missing,
                            from_env=from_env)
        marker = read_marker(backend, env)
        if marker is not None and plan.changes:
            # a restore would unpause what the emergency holds: end the emergency first
            raise PausectlError(f"an emergency pause is active in {env} since "
                                f"{marker.get('started')}; `pausectl emergency recover {env}` "
                                "first, then restore")
        if not plan.changes:
            notes = "".join(f", {n} {what}" for n, what in (
                (len(plan.skipped), "stale (not flipped)"), (len(plan.missing), "missing in "
                 f"{env}"), (len(plan.unmanaged), f"in {env} but not in the file")) if n)
            click.echo(f"Nothing to restore: live {env} already matches the export {file} "
                       f"({plan.unchanged} DAG(s) in their saved state{notes}).")
            return
        plan.batches = batches_json(plan_batches(plan.changes, rollout_of(ctx, opts), live))
        plan_text(plan)
        _confirm(plan, yes)
        result = apply_plan(ctx, backend, plan, opts, live=live)
        if result.status == "done":
            click.echo(f"Restore complete: {result.changed} DAG(s) of {env} put back to their "
                       f"state in {file}.")
            return
        _finish(result, env)
    finally:
        backend.close()
