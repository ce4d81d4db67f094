"""`pausectl emergency pause ENV --reason ...` / `pausectl emergency recover ENV`."""

from __future__ import annotations

import getpass
import socket

import click

from reconciler.core.errors import PausectlError
from reconciler.cli.common import (confirm_live, confirmer, exit_with, finish_apply,
                                   format_option, run_flags, run_options, state_option,
                                   yes_option)


@click.group()
def emergency():
    """Pause everything now (bulk), and later put back exactly what was running."""


@emergency.command("pause")
@click.argument("env")
@state_option
@click.option("--reason", required=True, help="Why (kept in the marker, shown by every plan).")
@click.option("--owner", default=None, help="Who is in charge (default: your user name).")
@click.option("--except", "excepts", metavar="SELECTOR", multiple=True,
              help="Keep these running: tag:NAME, dag_id:GLOB, owner:NAME; `,` = or, "
                   "`+` = and (repeatable). safety.protect DAGs always keep running.")
@format_option("text", "json")
@yes_option
def pause(env, state_dir, reason, owner, excepts, fmt, yes):
    """Pause every DAG of ENV except the exceptions, saving the prior state first.

    Writes the marker Variable pausectl.emergency.ENV (reason, owner, exceptions, the prior
    state of every DAG it pauses) before changing anything; every later plan, apply and
    drift then keeps those DAGs paused until `pausectl emergency recover ENV`. Running it
    again while the emergency is active completes it."""
    from reconciler.apply import emergency as em
    from reconciler.engine import load, open_backend
    from reconciler.plan.render import dump_json
    if not reason.strip():
        raise PausectlError("--reason must not be empty")
    ctx = load(state_dir, env)
    protect = list(ctx.cfg.protect) + list(ctx.state.protect)
    owner = owner or _user()
    backend = open_backend(ctx.cfg, env)
    try:
        summary = em.pause(backend, env, reason.strip(), owner, list(excepts), protect,
                           by=f"{_user()}@{socket.gethostname()}", log=_log,
                           confirm=lambda n, kept: confirm_live(
                               yes, f"pause {n} DAGs in {env} except {kept}", pipe_ok=True))
    finally:
        backend.close()
    holder = summary.pop("apply_holder", None)      # read at once with the verification
    if holder:
        summary["warning"] = (f"an apply holds the lock of {env} ({holder}): it stops before "
                              f"its next batch; run this command again once it has stopped, "
                              "to pause what its current batch started")
    if fmt == "json":
        dump_json(summary)
    else:
        s = summary["seconds"]
        click.echo(f"EMERGENCY in {env}: paused {summary['paused']} DAG(s) in {s['total']:.3f}s "
                   f"(list {s['list']:.3f}s, marker {s['marker']:.3f}s, pause {s['pause']:.3f}s); "
                   f"{summary['already_paused']} were already paused; "
                   f"{len(summary['kept_running'])} kept running"
                   + (f": {', '.join(summary['kept_running'][:20])}"
                      f"{' ...' if len(summary['kept_running']) > 20 else ''}"
                      if summary["kept_running"] else ""))
        click.echo(f"marker: Variable {em.marker_key(env)} (since {summary['started']}: "
                   f"{summary['reason']}); end it with `pausectl emergency recover {env}`")
        if summary.get("warning"):
            click.echo(f"warning: {summary['warning']}", err=True)
        for d, e in sorted(summary["errors"].items()):
            click.echo(f"error: {e}", err=True)
    from reconciler.operate.publish import Outcome, publish_cli
    publish_cli(ctx.cfg, "emergency", [Outcome(env, emergency={
        "action": "pause", "reason": summary["reason"], "owner": owner,
        "count": summary["paused"], "detail": (f"{len(summary['kept_running'])} kept running; "
                                               f"{len(summary['errors'])} error(s)")})])
    if summary["errors"]:
        click.echo(f"{len(summary['errors'])} DAG(s) could not be paused; run the command "
                   "again to complete the emergency", err=True)
        exit_with(1)


@emergency.command("recover")
@click.argument("env")
@state_option
@run_flags
def recover(env, state_dir, yes, batches, canary, wait_seconds, min_runs, max_failed_runs,
            gate_timeout, on_gate_failure, no_gates):
    """End the emergency in ENV: put back exactly what it paused, in canary batches with
    health gates, a journal and the lock; the marker is deleted only after that succeeded."""
    from reconciler.apply import emergency as em
    from reconciler.engine import load, open_backend
    from reconciler.operate.publish import Outcome, publish_cli
    from reconciler.operations import recover_env
    from reconciler.plan.records import ApplyStatus
    from reconciler.plan.render import plan_text
    ctx = load(state_dir, env)
    opts = run_options(batches, canary, wait_seconds, min_runs, max_failed_runs, gate_timeout,
                       on_gate_failure, no_gates)
    backend = open_backend(ctx.cfg, env)
    try:
        plan, result = recover_env(ctx, backend, opts, show=plan_text, confirm=confirmer(yes))
    finally:
        backend.close()
    if result is not None and result.status != ApplyStatus.DONE:
        click.echo(f"the emergency in {env} is still active (marker kept)", err=True)
        publish_cli(ctx.cfg, "emergency", [Outcome(env, plan, result=result)])
        finish_apply(result, env)
        return
    publish_cli(ctx.cfg, "emergency", [Outcome(env, emergency={
        "action": "recover", "count": len(plan.changes),
        "detail": f"marker {em.marker_key(env)} deleted"})])
    click.echo(f"Emergency in {env} is over: {len(plan.changes)} DAG(s) put back to their "
               f"state before it; marker {em.marker_key(env)} deleted.")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _log(text: str) -> None:
    click.echo(text, err=True)

