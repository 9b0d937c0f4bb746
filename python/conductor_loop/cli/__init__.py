"""The ``conductor-loop`` command line (click): the group, its commands, and the console entry point.

| module | commands |
|---|---|
| :mod:`~conductor_loop.cli.goflags` | the Go loop's spelling (``-handoff DIR -once``, no sub-command) |
| :mod:`~conductor_loop.cli.common` | exit codes, the ``run`` options (shared with ``config show``) |
| :mod:`~conductor_loop.cli.run` | ``run`` |
| :mod:`~conductor_loop.cli.tools` | ``validate``, ``porch`` |
| :mod:`~conductor_loop.cli.status` | ``status`` |
| :mod:`~conductor_loop.cli.retry` | ``retry`` |
| :mod:`~conductor_loop.cli.statecmd` | ``state export|import|prune`` |
| :mod:`~conductor_loop.cli.config_show` | ``config show`` |
| :mod:`~conductor_loop.cli.worker` | ``worker`` (a fleet worker host) |
| :mod:`~conductor_loop.cli.fleetcmd` | ``fleet status`` |
| :mod:`~conductor_loop.cli.helptext` | every ``--help`` ends with its examples |
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from conductor_loop.cli.common import EXIT_USAGE, fail
from conductor_loop.cli.config_show import config_group
from conductor_loop.cli.fleetcmd import fleet_group
from conductor_loop.cli.goflags import GoFlagError, translate
from conductor_loop.cli.helptext import examples_last
from conductor_loop.cli.retry import retry_cmd
from conductor_loop.cli.run import run
from conductor_loop.cli.statecmd import state_group
from conductor_loop.cli.status import status_cmd
from conductor_loop.cli.tools import porch, validate
from conductor_loop.cli.worker import worker_cmd

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(None, "--version", package_name="conductor-loop", prog_name="conductor-loop")
def cli() -> None:
    """Watch a handoff directory for intent files, run porch for each, and file the result.

    \b
    Example:
      conductor-loop run --once --handoff ./handoff --out ./out
    """


for _command in (run, validate, porch, status_cmd, retry_cmd, state_group, config_group, worker_cmd, fleet_group):
    cli.add_command(_command)
examples_last(cli)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0].startswith("-") and args[0] not in ("-h", "--help", "--version"):
        args = ["run", *args]  # the Go loop had no sub-commands: `conductor-loop -handoff DIR -once`
    cli.main(args=_go_spellings(args), prog_name="conductor-loop")


def _go_spellings(args: list[str]) -> list[str]:
    """Translate the Go loop's flags for ``run`` and ``config show`` (README "Migrating from the Go loop")."""
    if args[:1] == ["run"]:
        n, command = 1, run
    elif args[:2] == ["config", "show"]:
        n, command = 2, config_group.commands["show"]
    else:
        return args
    value_options = {
        o for p in command.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts if o[:2] == "--"
    }
    try:
        done = translate(args[n:], value_options)
    except GoFlagError as exc:
        fail(EXIT_USAGE, str(exc))
    for warning in done.warnings:
        click.echo(f"conductor-loop: warning: {warning}", err=True)
    return args[:n] + done.argv
