"""`pausectl hold ENV DAG_ID... --for 4h --reason ...`: pause (or keep running) now, for a
while, without a pull request; `--list`, `--release`. See policy/holds.py."""

from __future__ import annotations

import sys

import click

from reconciler.cli.common import confirm_live, format_option, state_option, yes_option
from reconciler.core.errors import PausectlError


@click.command()
@click.argument("env")
@click.argument("dag_ids", nargs=-1)
@state_option
@click.option("--for", "for_", metavar="DURATION", default=None,
              help="How long: 30m, 4h, 1d (at most safety.max_hold_hours).")
@click.option("--until", "until", metavar="TIME", default=None,
              help="Until when (ISO 8601), instead of --for.")
@click.option("--reason", default=None, help="Why (required to hold; shown everywhere).")
@click.option("--paused/--running", "paused", default=True, show_default=True,
              help="Hold the DAGs paused (default) or running.")
@click.option("--list", "list_", is_flag=True, help="Show ENV's holds.")
@click.option("--release", "release_", is_flag=True,
              help="End the holds of DAG_IDs now (git applies again at the next apply).")
@click.option("--all", "all_", is_flag=True, help="With --release: every hold of ENV.")
@format_option("text", "json")
@yes_option
def hold(env, dag_ids, state_dir, for_, until, reason, paused, list_, release_, all_, fmt,
         yes):
    """Hold DAG_IDs of ENV paused (or running) now, for a while, with a reason.

    The flip happens now and is verified by listing; who, why and until are kept in the
    Airflow Variable pausectl.holds.ENV. While it lasts, plan, apply, drift and doctor leave
    those DAGs alone and show them `held (by, reason, ends in)`; once it ends, the next apply
    (or `pausectl reconcile --watch` tick) puts back what git says and removes the record.

    \b
    Examples:
      pausectl hold prod billing_daily --for 4h --reason "INC-123 vendor down" --yes
      pausectl hold prod etl_a etl_b --until 2026-12-01T18:00:00Z --reason "db failover"
      pausectl hold prod reports_hourly --running --for 2h --reason "exec demo"
      pausectl hold prod --list
      pausectl hold prod --release billing_daily     (or --release --all)
    """
    from reconciler.apply import holds_flow
    from reconciler.engine import load, open_backend
    modes = sum(map(bool, (list_, release_)))
    if modes > 1:
        raise PausectlError("--list and --release do not go together")
    if all_ and not release_:
        raise PausectlError("--all goes with --release")
    ctx = load(state_dir, env)
    backend = open_backend(ctx.cfg, env)
    try:
        if list_:
            return _list(backend, env, fmt)
        if release_:
            if not dag_ids and not all_:
                raise PausectlError("name the DAGs to release, or --all")
            confirm_live(yes, f"release {'every hold' if all_ else f'{len(dag_ids)} hold(s)'} "
                              f"in {env}")
            out = holds_flow.release(ctx, backend, dag_ids, all_=all_, log=_log)
        else:
            at, end = _window(ctx, for_, until)
            if not reason:
                raise PausectlError("--reason is required: say why (it is shown everywhere)")
            if not dag_ids:
                raise PausectlError("name at least one DAG to hold")
            state = "paused" if paused else "running"
            confirm_live(yes, f"hold {len(dag_ids)} DAG(s) {state} in {env} until {_iso(end)}")
            out = holds_flow.place(ctx, backend, dag_ids, paused, end, reason, at=at, log=_log)
    finally:
        backend.close()
    _show(out, fmt)
    for w in holds_flow.notify(ctx.cfg, out) + out.warnings:
        click.echo(f"warning: {w}", err=True)


def _window(ctx, for_, until):
    from reconciler.apply.holds_flow import check_until
    from reconciler.cli.common import parse_at
    from reconciler.core.timeutil import parse_duration, utcnow
    if (for_ is None) == (until is None):
        raise PausectlError("say how long: --for DURATION or --until TIME (one of them)")
    at = utcnow().replace(microsecond=0)
    if for_ is not None:
        try:
            end = at + parse_duration(for_)
        except ValueError as e:
            raise PausectlError(f"--for: {e}") from None
    else:
        end = parse_at(until)
    check_until(ctx.cfg, at, end)
    return at, end


def _iso(t) -> str:
    from reconciler.core.timeutil import iso
    return iso(t)


def _log(text: str) -> None:
    click.echo(text, err=True)


def _list(backend, env: str, fmt: str) -> None:
    from reconciler.core.sanitize import line_writer
    from reconciler.core.timeutil import utcnow
    from reconciler.policy.holds import holds_key, read
    holds, warnings = read(backend, env)
    now = utcnow()
    if fmt == "json":
        from reconciler.plan.render import dump_json
        dump_json({"environment": env, "variable": holds_key(env),
                   "holds": [{**h.to_json(), "active": h.active(now)}
                             for _, h in sorted(holds.items())], "warnings": warnings})
        return
    w = line_writer(sys.stdout)
    for text in warnings:
        w(f"warning: {text}\n")
    if not holds:
        w(f"{env}: no holds (Variable {holds_key(env)})\n")
    from reconciler.core.tables import terminal
    con = terminal(sys.stdout)
    if con is not None and holds:       # a terminal: a table that never cuts an identifier
        _table(con, holds, now)
        return
    for d, h in sorted(holds.items()):
        w(f"{d}  {h.describe(now)}  since {_iso(h.since)}\n")


def _table(con, holds, now) -> None:
    from reconciler.core.sanitize import term
    from reconciler.core.tables import Col, show
    from reconciler.policy.holds import ends_in
    cols = (Col("dag_id", "id", "bold"), Col("held", "id"), Col("by", "id"),
            Col("until", "id"), Col("ends in", "id"), Col("reason", "text"))
    rows = [(term(d), "paused" if h.paused else "running", term(h.by), _iso(h.until),
             ends_in(h.until - now) if h.active(now) else "expired", term(h.reason))
            for d, h in sorted(holds.items())]
    show(con, cols, rows, lambda r: (f"~ {r[0]}  held {r[1]} until {r[3]} ({r[4]})  by {r[2]}",
                                     r[5]))


def _show(out, fmt: str) -> None:
    from reconciler.core.sanitize import line_writer
    from reconciler.core.timeutil import utcnow
    from reconciler.policy.holds import holds_key
    if fmt == "json":
        from reconciler.plan.render import dump_json
        dump_json({"environment": out.env, "action": out.action, "flipped": out.flipped,
                   "holds": [h.to_json() for h in out.records], "warnings": out.warnings})
        return
    w = line_writer(sys.stdout)
    now = utcnow()
    if out.action == "release":
        if not out.records:
            w(f"{out.env}: no holds to release\n")
        for h in out.records:
            w(f"released {h.dag_id} ({h.describe(now)}); the next apply puts back git\n")
        return
    flipped = set(out.flipped)
    for h in out.records:
        verb = ("paused now" if h.paused else "unpaused now") if h.dag_id in flipped else \
            f"already {'paused' if h.paused else 'running'}"
        w(f"{h.dag_id}: {verb}; {h.describe(now)}\n")
    w(f"recorded in Variable {holds_key(out.env)}; it ends by itself at the first apply after "
      f"{_iso(out.records[0].until)}; `pausectl hold {out.env} --release "
      f"{out.records[0].dag_id}` ends it now\n")
