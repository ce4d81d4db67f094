"""`pausectl completion bash|zsh|fish`, and what the shells complete: environment names from
pausectl.yaml, DAG ids from the environment's state files (click's shell completion protocol:
the script calls pausectl back with _PAUSECTL_COMPLETE set)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

# parameters completed as environment names / DAG ids, by their name in the commands
ENV_PARAMS = {"env", "envs", "source", "target", "from_env"}
DAG_PARAMS = {"dag_id", "dag_ids"}
# what Airflow allows in a dag_id (and pausectl in an environment name): nothing a shell reads
SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,250}")


def _state_dir(ctx: click.Context) -> Path:
    c: click.Context | None = ctx
    while c is not None:                       # the command's --state, then the global one
        if c.params.get("state_dir"):
            return Path(c.params["state_dir"])
        c = c.parent
    return Path(os.environ.get("PAUSECTL_STATE") or "state")


def _yaml(path: Path):
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f.read(1_000_000))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def env_names(ctx: click.Context) -> list[str]:
    cfg = _yaml(_state_dir(ctx) / "pausectl.yaml")
    envs = cfg.get("environments") if isinstance(cfg, dict) else None
    return sorted(str(e) for e in envs) if isinstance(envs, dict) else []


def dag_ids(ctx: click.Context) -> list[str]:
    """The DAG ids named by dag entries in ENV's file and the files it includes (one level
    of includes each, confined to the state dir: completion reads, never follows far)."""
    root = _state_dir(ctx).resolve()
    env = ctx.params.get("env") or next(iter(ctx.params.get("envs") or ()), None)
    files = [root / f"{env}.yaml"] if env else sorted(root.glob("*.yaml"))
    seen: set[Path] = set()
    out: set[str] = set()
    while files:
        path = files.pop()
        if path in seen or not path.resolve().is_relative_to(root) or len(seen) > 100:
            continue
        seen.add(path)
        doc = _yaml(path)
        if not isinstance(doc, dict):
            continue
        if isinstance(doc.get("dags"), dict):
            out.update(str(d) for d in doc["dags"])
        for inc in doc.get("include") or () if isinstance(doc.get("include"), list) else ():
            files.append(root / str(inc))
    return sorted(out)


class Completed(click.ParamType):
    """A plain string whose shell completion offers `choices(ctx)`."""

    name = "text"

    def __init__(self, choices):
        self.choices = choices

    def convert(self, value, param, ctx):
        return value

    def shell_complete(self, ctx, param, incomplete):
        # names from files go to the shell's completion code: only plain names pass
        return [CompletionItem(c) for c in self.choices(ctx)
                if c.startswith(incomplete) and SAFE_NAME.fullmatch(c)]


ENV_TYPE = Completed(env_names)
DAG_TYPE = Completed(dag_ids)


def complete_params(cmd: click.Command) -> None:
    """Give a command's ENV and DAG_ID parameters their completions (string types only)."""
    for p in cmd.params:
        if isinstance(p.type, click.types.StringParamType):
            if p.name in ENV_PARAMS:
                p.type = ENV_TYPE
            elif p.name in DAG_PARAMS:
                p.type = DAG_TYPE


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """Print the shell completion script for SHELL (commands, options, environment names from
    pausectl.yaml, DAG ids from the state files)."""
    root = click.get_current_context().find_root()
    cls = get_completion_class(shell)
    click.echo(cls(root.command, {}, "pausectl", "_PAUSECTL_COMPLETE").source())
