"""The terminal face of every command, added where commands are registered (cli/main.py):
the global flags also accepted after the command (--state, --format, --no-color, --wide),
help that ends with real examples, shell completion of ENV and DAG_ID, a progress reporter on
a terminal stderr and wide lines folded on a terminal stdout. Piped output is not touched."""

from __future__ import annotations

import os
import re
import sys

import click
from click.core import ParameterSource

# the last lines of each command's --help: one or two commands that work on the example state
EXAMPLES = {
    "validate": ["pausectl validate", "pausectl validate --strict --format github"],
    "plan": ["pausectl plan prod", "pausectl plan prod --format markdown --detailed-exitcode"],
    "explain": ["pausectl explain prod billing_daily"],
    "apply": ["pausectl apply prod", "pausectl apply prod --plan plan.json --yes"],
    "rollback": ["pausectl rollback prod", "pausectl rollback prod --journal FILE --yes"],
    "drift": ["pausectl drift prod staging", "pausectl drift prod --format json"],
    "export": ["pausectl export prod --out prod-live.json", "pausectl export prod --format yaml"],
    "restore": ["pausectl restore prod prod-live.json"],
    "diff": ["pausectl diff origin/main HEAD", "pausectl diff HEAD~1 HEAD prod --offline"],
    "history": ["pausectl history prod billing_daily", "pausectl history prod --offline"],
    "promote": ["pausectl promote --from staging --to prod --dry-run"],
    "schedule": ["pausectl schedule prod --next 14d"],
    "lint": ["pausectl lint prod", "pausectl lint prod --format github --strict"],
    "codeowners": ["pausectl codeowners --team-prefix @acme/ > .github/CODEOWNERS"],
    "doctor": ["pausectl doctor prod etl_orders"],
    "emergency": ['pausectl emergency pause prod --reason "warehouse down" --except tag:critical',
                  "pausectl emergency recover prod"],
    "emergency pause": ['pausectl emergency pause prod --reason "warehouse down"',
                        'pausectl emergency pause prod --reason "db failover" --except tag:canary'],
    "emergency recover": ["pausectl emergency recover prod",
                          "pausectl emergency recover prod --batches 10%,100% --yes"],
    "completion": ["pausectl completion bash > ~/.local/share/bash-completion/completions/pausectl",
                   'eval "$(pausectl completion zsh)"'],
}
# a command whose docstring has its own `Examples:` block keeps it, moved to the very end
_OWN_EXAMPLES = re.compile(r"\n\s*(?:\x08\s*\n\s*)?Examples?:\s*\n")

_DONE = "_pausectl_decorated"


def decorate(name: str, cmd: click.Command) -> click.Command:
    """Add the terminal face to a command (idempotent: commands are module-level objects)."""
    if getattr(cmd, _DONE, False):
        return cmd
    setattr(cmd, _DONE, True)
    from reconciler.cli.completion import complete_params
    complete_params(cmd)
    for p in cmd.params:
        if p.name in ("state_dir", "fmt"):
            p.callback = _global_default(p.name, p.callback)
    names = {p.name for p in cmd.params}
    if "no_color" not in names and not isinstance(cmd, click.Group):
        cmd.params.append(click.Option(["--no-color"], is_flag=True, expose_value=False,
                                       is_eager=True, callback=lambda c, p, v: no_color(v),
                                       help="No colour or styles (like NO_COLOR=1)."))
        cmd.params.append(click.Option(["--wide"], is_flag=True, expose_value=False,
                                       callback=lambda c, p, v: wide(v),
                                       help="Free text (reasons) whole in tables."))
    examples = EXAMPLES.get(name)
    own = _OWN_EXAMPLES.search(cmd.help or "")
    if own and not cmd.epilog:
        block = (cmd.help or "")[own.end():]
        cmd.help = (cmd.help or "")[:own.start()].rstrip()
        examples = [x.strip() for x in block.splitlines() if x.strip() not in ("", "\b")]
    if examples and not cmd.epilog:
        cmd.epilog = "\b\nExamples:\n" + "\n".join(f"  {e}" for e in examples)
    if isinstance(cmd, click.Group):
        for sub_name, sub in cmd.commands.items():
            decorate(f"{name} {sub_name}", sub)
    return cmd


def _global_default(name: str, inner):
    """A command's --state/--format given before the command (`pausectl --state DIR plan`)
    counts when the command's own was not given on the command line; after it, the command's
    own wins, like kubectl's flags."""
    def callback(ctx: click.Context, param: click.Parameter, value):
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            root = ctx.find_root()
            given = root.meta.get(f"pausectl.{name}")
            if given is not None:
                value = param.type_cast_value(ctx, given)
        return inner(ctx, param, value) if inner else value
    return callback


def no_color(on: bool) -> None:
    if on:
        os.environ["NO_COLOR"] = "1"     # rich, click and the tables read it


def wide(on: bool) -> None:
    if on:
        from reconciler.core import tables
        tables.WIDE = True


def setup():
    """Fold wide lines on a terminal stdout (core/tables.FoldingStream, below the guard);
    returns the undo, which also forgets --no-color/--wide (one CLI run each)."""
    from reconciler.core import tables
    saved = sys.stdout, os.environ.get("NO_COLOR"), tables.WIDE
    if sys.stdout is not None and hasattr(sys.stdout, "isatty") and sys.stdout.isatty():
        sys.stdout = tables.FoldingStream(sys.stdout)

    def undo() -> None:
        if isinstance(sys.stdout, tables.FoldingStream):
            try:
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
        sys.stdout, color, tables.WIDE = saved[0], saved[1], saved[2]
        if color is None:
            os.environ.pop("NO_COLOR", None)
        else:
            os.environ["NO_COLOR"] = color
    return undo


def progress_on(stderr):
    """The rich progress reporter while stderr is a terminal; returns the undo."""
    from reconciler.core import progress
    return progress.install(progress.for_terminal(stderr))
