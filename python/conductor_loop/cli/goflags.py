"""Go-style command lines: the Go loop had no sub-commands and single-dash flags.

``conductor-loop -handoff DIR -once`` means ``conductor-loop run --handoff DIR --once``.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Single-dash spellings of the Go loop, rewritten to click's double-dash options.
GO_FLAGS = frozenset({"handoff", "porch", "mode", "out", "once", "debounce"})


def _go_argv(argv: Sequence[str]) -> list[str]:
    """Rewrite ``-handoff x`` / ``-handoff=x`` (Go flag style) to ``--handoff``; stops at ``--``."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg.startswith("-") and not arg.startswith("--"):
            name = arg[1:].split("=", 1)[0]
            if name in GO_FLAGS:
                arg = "-" + arg
        out.append(arg)
    return out


def go_style(args: list[str]) -> list[str]:
    """The argv click sees: a leading flag means ``run``; ``run``'s Go-style flags get a second dash."""
    if args and args[0].startswith("-") and args[0] not in ("-h", "--help", "--version"):
        args = ["run", *args]  # the Go loop had no sub-commands: `conductor-loop -handoff DIR -once`
    if args and args[0] == "run":
        args = [args[0], *_go_argv(args[1:])]
    return args
