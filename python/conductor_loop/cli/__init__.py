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
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from conductor_loop import __version__
from conductor_loop.cli.config_show import config_group
from conductor_loop.cli.goflags import go_style
from conductor_loop.cli.retry import retry_cmd
from conductor_loop.cli.run import run
from conductor_loop.cli.statecmd import state_group
from conductor_loop.cli.status import status_cmd
from conductor_loop.cli.tools import porch, validate

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="conductor-loop")
def cli() -> None:
    """Watch a handoff directory for intent files, run porch for each, and file the result.

    \b
    Example:
      conductor-loop run --once --handoff ./handoff --out ./out
    """


for _command in (run, validate, porch, status_cmd, retry_cmd, state_group, config_group):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = go_style(list(sys.argv[1:] if argv is None else argv))
    cli.main(args=args, prog_name="conductor-loop")
