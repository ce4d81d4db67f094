"""doctor: the on-call commands."""

from __future__ import annotations

import click

from reconciler.cli.common import format_option, state_option


@click.command()
@click.argument("env")
@click.argument("dag_id")
@state_option
@format_option("text", "json")
@click.option("--snapshot", "snapshot", metavar="FILE", default=None,
              help="Use this snapshot file as the live state (no run/task checks).")
def doctor(env, dag_id, state_dir, fmt, snapshot):
    """Why isn't DAG_ID running in ENV? The finding first, the evidence after."""
    from reconciler.operate.doctor import diagnose, doctor_text
    from reconciler.engine import load, open_backend
    from reconciler.plan.render import dump_json
    from reconciler.core.timeutil import utcnow
    from reconciler.cli.core import snapshot_backend
    at = utcnow()
    ctx = load(state_dir, env, at)
    backend = snapshot_backend(env, snapshot) if snapshot else open_backend(ctx.cfg, env)
    try:
        result = diagnose(ctx, backend, dag_id, at)
    finally:
        backend.close()
    if fmt == "json":
        dump_json(result)
    else:
        doctor_text(result)
