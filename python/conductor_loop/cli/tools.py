"""``validate`` and ``porch``: the loop's validation and the built-in porch, stand-alone."""

from __future__ import annotations

import sys

import click

from conductor_loop.cli.common import EXIT_USAGE, fail


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--max-file-size", default="10MiB", show_default=True, metavar="SIZE")
@click.option("--intent-schema", default="builtin", show_default=True, metavar="builtin|go-compat|PATH")
def validate(files: tuple[str, ...], max_file_size: str, intent_schema: str) -> None:
    """Check intent files exactly as the loop does; exit 1 if any is invalid.

    \b
    Example:
      conductor-loop validate handoff/intent-*.json
      conductor-loop validate --intent-schema go-compat handoff/intent-*.json
    """
    from conductor_loop.intent_schema import load_schema
    from conductor_loop.units import parse_size
    from conductor_loop.validate import validate_path

    try:
        limit = parse_size(max_file_size)
        schema = load_schema(intent_schema)
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
        return
    bad = 0
    for f in files:
        problems = validate_path(f, limit, schema)
        for p in problems:
            click.echo(f"{f}: {p}")
        if problems:
            bad += 1
        else:
            click.echo(f"{f}: ok")
    sys.exit(1 if bad else 0)


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.pass_context
def porch(ctx: click.Context) -> None:
    """The built-in porch stand-alone: porch -intent FILE -out DIR [-structured].

    \b
    Example:
      conductor-loop porch -intent handoff/intent-a.json -out ./out -structured
    """
    from conductor_loop.porch import main as porch_main

    sys.exit(porch_main(list(ctx.args)))


