"""Every ``--help`` ends with its examples (README, "Usage").

Click prints a command's help text, then its options (and a group's sub-commands), then its epilog.
Examples are written at the end of each command's help text, where they read naturally in the source;
:func:`examples_last` moves that trailing block into the epilog, so that on screen they come last.
"""

from __future__ import annotations

import inspect
import re

import click

__all__ = ["examples_last"]

#: A ``\b`` (keep as is) paragraph that starts with "Example:" or "Examples:".
_EXAMPLES = re.compile(r"^\x08[ \t]*\n[ \t]*Examples?:[ \t]*$", re.M)


def _move(command: click.Command) -> None:
    if not command.help:
        return
    text = inspect.cleandoc(command.help)
    found = list(_EXAMPLES.finditer(text))
    if not found:
        return
    start = found[-1].start()
    examples = text[start:].rstrip()
    command.help = text[:start].rstrip()
    command.epilog = f"{command.epilog.rstrip()}\n\n{examples}" if command.epilog else examples


def examples_last(command: click.Command) -> None:
    """Move the examples at the end of the help text of ``command`` and its sub-commands to the epilog."""
    _move(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            examples_last(sub)
