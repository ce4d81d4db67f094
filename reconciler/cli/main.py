"""The `pausectl` command line. Commands load lazily so `pausectl --help` starts fast."""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
import threading

import click

from reconciler import __version__

# command name -> "module:attribute"; each command lives in reconciler/cli/
COMMANDS = {
    "validate": "reconciler.cli.core:validate",
    "plan": "reconciler.cli.core:plan",
    "explain": "reconciler.cli.core:explain",
    "apply": "reconciler.cli.live:apply",
    "rollback": "reconciler.cli.live:rollback",
    "drift": "reconciler.cli.live:drift",
    "export": "reconciler.cli.live:export",
    "restore": "reconciler.cli.live:restore",
    "diff": "reconciler.cli.git:diff",
    "history": "reconciler.cli.git:history",
    "promote": "reconciler.cli.git:promote",
    "schedule": "reconciler.cli.policy:schedule",
    "lint": "reconciler.cli.policy:lint",
    "codeowners": "reconciler.cli.policy:codeowners",
    "doctor": "reconciler.cli.operate:doctor",
    "emergency": "reconciler.cli.emergency:emergency",
    "test": "reconciler.cli.watch:test",
    "reconcile": "reconciler.cli.watch:reconcile",
    "hold": "reconciler.cli.hold:hold",
    "completion": "reconciler.cli.completion:completion",
    "report": "reconciler.cli.report:report",
}

HELP = {
    "validate": "Check the state repo: schema and semantics.",
    "plan": "Show what apply would change in ENV.",
    "explain": "Which rule decides DAG_ID in ENV, and why.",
    "apply": "Apply ENV's plan: canary batches, gates, journal, lock.",
    "rollback": "Undo an apply exactly, from its journal.",
    "drift": "Live changes not in git, and who made them.",
    "export": "Write ENV's live pause state (snapshot or <env>.yaml).",
    "restore": "Put back a saved live pause state.",
    "diff": "What a change to the state repo (BASE..HEAD) does, per environment and DAG.",
    "history": "Git history of ENV's desired state joined with Airflow's audit log.",
    "promote": "Carry promotable rules from one environment's file into the next, on a branch.",
    "schedule": "Upcoming pause/unpause transitions in ENV (windows, budgets, from/until).",
    "lint": "Pause anti-patterns in ENV: forgotten pauses, no tickets, unknown live pauses...",
    "codeowners": "CODEOWNERS lines for the tenants' state files.",
    "doctor": "Why isn't DAG_ID running in ENV? Finding first, evidence after.",
    "emergency": "Pause everything in ENV now (emergency pause) / put it back (recover).",
    "test": "Run the state repo's tests (state/tests/*.yaml).",
    "reconcile": "Keep ENV... reconciled; --watch: the always-on controller.",
    "hold": "Pause (or keep running) DAGs now, for a while, with a reason; ends by itself.",
    "completion": "Shell completion script: bash, zsh or fish.",
    "report": "The fleet dashboard: ENVs side by side, pause age, windows timeline (HTML).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        from reconciler.cli.terminal import decorate
        return decorate(name, getattr(importlib.import_module(module), attr))

    def format_commands(self, ctx, formatter):
        rows = [(name, HELP.get(name, "")) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="\b\nExamples:\n  pausectl plan prod\n  pausectl --state ./state drift prod "
                    "staging")
@click.version_option(__version__, prog_name="pausectl")
@click.option("--state", "state_dir", metavar="DIR", default=None,
              help="State repo directory, for any command (also accepted after it).")
@click.option("--format", "fmt", metavar="FORMAT", default=None,
              help="Output format, for any command that has one (also accepted after it).")
@click.option("--no-color", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda c, p, v: _terminal().no_color(v),
              help="No colour or styles (like NO_COLOR=1); also accepted after the command.")
@click.option("--wide", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda c, p, v: _terminal().wide(v),
              help="Show free text (reasons) whole in tables instead of cutting it.")
@click.pass_context
def cli(ctx, state_dir, fmt):
    """pausectl: the pause state of every Airflow DAG, in git, reconciled.

    Exit codes: 0 ok / no changes, 1 error or invalid input, 2 changes pending
    (--detailed-exitcode), 3 a health gate failed or the apply was rolled back.
    """
    # the commands' own --state/--format read these when not given after the command
    ctx.meta["pausectl.state_dir"], ctx.meta["pausectl.fmt"] = state_dir, fmt


def _terminal():
    from reconciler.cli import terminal
    return terminal


def main(argv=None) -> None:
    # every byte the CLI writes goes through the output guard (reconciler/core/sanitize.py): no
    # control or escape sequence, no workflow command a data value could start, no secret
    if os.environ.get("_PAUSECTL_COMPLETE"):
        # a shell asks for completions: click writes them as bytes (the guard takes text);
        # the only data in them, ENV and DAG names, are filtered to safe names
        # (cli/completion.py), so they need no guard
        cli.main(args=argv, prog_name="pausectl")
        return
    from reconciler.core.sanitize import install_guards
    # a command builds 100k-DAG plans of acyclic records that live to its end: the default
    # thresholds (700, 10, 10) ran 8 full collections over them in one offline plan, ~30% of
    # its CPU, (50000, 20, 10) still 21 young and 1 middle one (~15%); these run none there
    # (a 100k plan allocates well under 1M objects net) and still collect a long-running
    # `reconcile --watch` every 1M allocations (restored on the way out)
    thresholds = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLDS)
    undo_terminal = _terminal().setup()   # folds wide lines on a terminal (below the guard)
    restore = install_guards()
    undo_progress = _terminal().progress_on(sys.stderr)
    try:
        _run(argv)
    finally:
        undo_progress()
        restore()
        undo_terminal()
        gc.set_threshold(*thresholds)


_GC_THRESHOLDS = (1_000_000, 20, 10)


def _line(e: BaseException) -> str:
    """An error as one line; data quoted in it cannot read as a workflow command either."""
    from reconciler.core.sanitize import one_line, term
    return term(one_line(e, 2_000))


def _run(argv) -> None:
    from reconciler.core.errors import PausectlError
    try:
        cli.main(args=argv, prog_name="pausectl", standalone_mode=False)
    except PausectlError as e:
        click.echo(f"error: {_line(e)}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(1 if e.exit_code == 2 else e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # an internal bug: one line, the traceback only on request
        if os.environ.get("PAUSECTL_DEBUG"):
            raise
        click.echo(f"internal error: {type(e).__name__}: {_line(e)} "
                   "(set PAUSECTL_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)


def entry(argv=None) -> None:
    """The `pausectl` command (and `python -m reconciler`): `main`, then leave without the
    interpreter's teardown. A 100k-DAG plan holds millions of small objects; freeing them one
    by one on the way out took ~15% of an offline plan's wall time, after its output was out.
    The exit handlers still run (logging, temp-dir finalizers); with another thread alive
    (`reconcile --watch`'s helpers) it exits the usual way, which waits for it (mypy's
    `hard_exit` does the same)."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:     # a closed pipe (`| head`): what _run answers too
            pass
        except (OSError, ValueError):  # e.g. a full disk: the output is incomplete
            code = code or 1
    os._exit(code)


def _exit_code(code) -> int:
    """What the interpreter makes of SystemExit(code): None is 0, a message is printed, 1
    (after main's output guard is gone: neutralised here, as _line does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(_line(code), file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    entry()
