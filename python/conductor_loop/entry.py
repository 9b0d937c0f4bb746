"""The ``conductor-loop`` console script's entry point (README, "Usage").

Multiprocessing re-runs the script that started the loop in every worker it starts (the "main fix-up"),
and the script pip writes imports its entry point's module at the top. This module imports nothing, and
imports the command line (click and every command) only when called: a worker, and the forkserver that
forks it, load just what a worker runs (docs/ARCHITECTURE.md, "What was cut").
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (:func:`conductor_loop.cli.main`)."""
    from conductor_loop.cli import main as cli_main

    cli_main(argv)
