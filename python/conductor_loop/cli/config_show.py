"""``conductor-loop config show``: the effective run configuration and where each value came from."""

from __future__ import annotations

import json
from typing import Any

import click

from conductor_loop.cli.common import resolve_or_exit, run_options

CONFIG_SHOW_HELP = """Print the effective run configuration and where each value came from.

Takes the same options as run; precedence is flag > CONDUCTOR_* env > config file > default.

\b
Examples:
  conductor-loop config show --config /etc/conductor-loop/config.toml
  CONDUCTOR_WORKERS=4 conductor-loop config show --timeout 1m --json
"""


@click.group("config")
def config_group() -> None:
    """Inspect the configuration.

    \b
    Example:
      conductor-loop config show --config /etc/conductor-loop/config.toml
    """


@config_group.command("show", help=CONFIG_SHOW_HELP)
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object {key: {value, source}}.")
def config_show(as_json: bool, **params: Any) -> None:
    """``conductor-loop config show``."""
    from conductor_loop.config import explain
    from conductor_loop.watch import choose_backend

    cfg, sources = resolve_or_exit(params)
    rows = explain(cfg, sources)
    if cfg.watch == "auto":  # say what auto picks for this handoff
        kind, why = choose_backend(cfg.handoff, cfg.watch)
        rows = [(k, f"auto: {kind} ({why})" if k == "watch" else v, s) for k, v, s in rows]
    if as_json:
        click.echo(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, sort_keys=True))
        return
    wk = max(len(r[0]) for r in rows)
    wv = max(len(r[1]) for r in rows)
    click.echo(f"{'key':<{wk}}  {'value':<{wv}}  source")
    for key, value, source in rows:
        click.echo(f"{key:<{wk}}  {value:<{wv}}  {source}")
