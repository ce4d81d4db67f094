"""test, reconcile: unit tests of the desired state, and the always-on controller.

`test` runs state/tests/*.yaml (operate/statetest.py) and renders (operate/statetest_render.py);
`reconcile` runs the controller (reconciler/controller/), whose ticks end in the publish stage."""

from __future__ import annotations

import click

from reconciler.cli.common import (
    Bounded,
    exit_with,
    format_option,
    output_path,
    rollout_override_options,
    run_options,
    state_option,
)


@click.command("test")
@click.argument("paths", nargs=-1)
@state_option
@format_option("text", "json", "github")
@click.option("--live", is_flag=True,
              help="Run against each environment's configured backend instead of the tests' "
                   "own live state (inline DAGs or snapshots).")
@click.option("--verbose", "-v", is_flag=True, help="Also list the tests that passed.")
def test(paths, state_dir, fmt, live, verbose):
    """Run the state repo's tests (default: every *.yaml in <state>/tests/, or PATHS).

    Each test names an environment, a time and the expected state of DAGs (paused, running,
    held, skipped, draining, ...), the deciding rule, the batch, conflicts or validation
    errors. A failure names the assertion's file:line, expected vs got, and the rule that
    decided. Exit 0 when all pass, 1 otherwise.

    \b
    Examples:
      pausectl test                         # state/tests/*.yaml, offline
      pausectl test state/tests/prod.yaml --format github
      pausectl test --live                  # against the environments' backends
    """
    from reconciler.operate.statetest import run_tests
    from reconciler.operate.statetest_render import render, summary_line
    from reconciler.state.loader import find_root
    root = find_root(state_dir)
    results = run_tests(root, list(paths) or None, live=live)
    render(results, fmt, verbose=verbose)
    if fmt == "text":
        failed = any(not r.passed for r in results)
        click.echo(summary_line(results), err=failed)
    exit_with(1 if any(not r.passed for r in results) else 0)


@click.command()
@click.argument("envs", nargs=-1, required=True, metavar="ENV...")
@state_option
@click.option("--watch", is_flag=True, help="Keep running: a tick every --interval and at "
              "every transition (without it: one tick per environment, then exit).")
@click.option("--mode", type=click.Choice(["apply", "report"]), default="apply",
              show_default=True, help="report: plan and publish, never change Airflow.")
@click.option("--interval", type=Bounded(1, 86400), default=60.0, show_default=True,
              help="Longest sleep between ticks, in seconds.")
@click.option("--standby-poll", type=Bounded(0.2, 3600), default=5.0, show_default=True,
              help="How often a standby replica tries to take the lease, in seconds.")
@click.option("--lease-ttl", type=Bounded(5, 86400), default=None,
              help="Seconds a leader's lease lives unrenewed (default 2 x interval + 30).")
@click.option("--listen", metavar="HOST:PORT", default=None,
              help="Serve /metrics /healthz /readyz here (default with --watch: "
                   "127.0.0.1:9108; 'off' for none).")
@click.option("--repo", metavar="URL", default=None,
              help="Read the state from this git URL (cloned once, fetched every tick).")
@click.option("--ref", metavar="GITREF", default=None,
              help="The branch, tag or commit to read (with --repo, or of the local repo).")
@click.option("--repo-path", default="state", show_default=True,
              help="The state directory inside --repo.")
@click.option("--checkout-dir", metavar="DIR", default=None,
              help="Where --repo is cloned (default .pausectl/checkout).")
@rollout_override_options
@click.option("--no-gates", is_flag=True, help="Skip health gates.")
@click.option("--allow-mass-change", is_flag=True, help="Allow more than safety.max_changes.")
@click.option("--allow-catchup", is_flag=True,
              help="Allow unpauses creating more catch-up runs than safety.max_catchup_runs "
                   "(or not counted by the impact preview); default: such a tick's apply is "
                   "refused.")
@click.option("--mirror-journal", is_flag=True, help="Also keep journals in an Airflow Variable.")
@click.option("--metrics-file", "metrics_file", metavar="PATH", default=None,
              help="Also write the metrics to PATH after every round.")
def reconcile(envs, state_dir, watch, mode, interval, standby_poll, lease_ttl, listen, repo,
              ref, repo_path, checkout_dir, batches, canary, wait_seconds, min_runs,
              max_failed_runs, gate_timeout, on_gate_failure, no_gates, allow_mass_change,
              allow_catchup, mirror_journal, metrics_file):
    """Keep ENV... reconciled: reload the state, plan, apply (or report), publish, repeat.

    With --watch it runs until SIGTERM: it sleeps until the earlier of --interval and the
    next transition (a window opens on time), finishes the batch in progress on SIGTERM
    and exits 0, resumes an apply a crash left running, and holds a lease per environment
    so a second replica waits as a hot standby. See docs/controller.md.

    \b
    Examples:
      pausectl reconcile prod --watch --interval 300
      pausectl reconcile dev staging --watch --mode report --listen 0.0.0.0:9108
      pausectl reconcile prod --watch --repo https://git.example.com/airflow-state.git --ref main
    """
    from reconciler.controller.loop import Controller, Settings
    from reconciler.controller.source import StateSource
    metrics_file = output_path(metrics_file, "--metrics-file", False, state_dir)
    if listen is None and watch:
        listen = "127.0.0.1:9108"
    if listen == "off":
        listen = None

    def options():
        return run_options(batches, canary, wait_seconds, min_runs, max_failed_runs,
                           gate_timeout, on_gate_failure, no_gates,
                           allow_mass_change=allow_mass_change, allow_catchup=allow_catchup,
                           mirror_journal=mirror_journal)
    options()                    # bad flags fail now, not in the first tick
    settings = Settings(list(dict.fromkeys(envs)), options, mode=mode, interval=interval,
                        standby_poll=standby_poll, lease_ttl=lease_ttl, listen=listen,
                        metrics_file=metrics_file, once=not watch)
    source = StateSource(state_dir, repo=repo, ref=ref, cache=checkout_dir, subdir=repo_path)
    controller = Controller(settings, source)
    code = controller.run()
    if not watch and not controller.status.ready():
        code = 1                 # a one-shot run reports a failed tick by its exit code
    exit_with(code)
