"""report: the fleet dashboard as one self-contained HTML file."""

from __future__ import annotations

import click

from reconciler.cli.common import force_option, output_path, state_option


@click.command()
@click.argument("envs", nargs=-1, required=True, metavar="ENV...")
@state_option
@click.option("--html", "html_file", metavar="FILE", required=True,
              help="Write the dashboard to FILE (one HTML file: no script, font or CDN).")
@force_option
def report(envs, state_dir, html_file, force):
    """The fleet dashboard: ENVs side by side with drift highlighted, pause age per DAG as a
    chart, the next 14 days of windows, holds and transitions as a timeline, and the emergency
    banner. The same status documents the Airflow plugin shows.

    \b
    Examples:
      pausectl report dev staging prod --html fleet.html
      pausectl report prod --state ./state --html /tmp/prod.html
    """
    from reconciler.core.timeutil import utcnow
    from reconciler.engine import load
    from reconciler.operate.publish import publish_cli
    from reconciler.operate.report import collect, write_report
    target = output_path(html_file, "--html", force, state_dir)
    at = utcnow()
    docs = collect(state_dir, list(dict.fromkeys(envs)), at)
    cfg = load(state_dir, envs[0], at).cfg

    def render() -> None:
        write_report(target, docs, at)
        click.echo(f"wrote {target} ({len(docs)} environment(s))")
    publish_cli(cfg, "report", [], render=render)
