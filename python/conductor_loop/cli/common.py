"""What the commands share: exit codes, failing, the ``run`` options (also ``config show``'s), the handoff.

Exit codes (README, "Exit codes"): 0 all good; 8 ``--once`` finished and some intents of this run
failed; 2 usage or configuration error; 1 any other fatal error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from conductor_loop.cli.goflags import GO_FLAG_OPTION, label_sources
from conductor_loop.config import ConfigError, RunConfig, resolve

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_FAILURES = 8


def fail(code: int, message: str) -> NoReturn:
    """Print ``conductor-loop: message`` on stderr and exit with ``code``."""
    click.echo(f"conductor-loop: {message}", err=True)
    sys.exit(code)


def serve_metrics(addr: str | None, metrics: Any, health: Any) -> Any:
    """Start the ``--metrics-addr`` server (``run`` and ``worker``), if asked for; exit 2 when ``addr`` is unusable."""
    if not addr:
        return None
    from conductor_loop.metricserver import MetricsServer  # http.server: imported only when served

    try:
        server = MetricsServer(addr, metrics, health)
        host, port = server.start()
    except (OSError, ValueError) as exc:
        fail(EXIT_USAGE, f"--metrics-addr {addr}: {exc}")
    click.echo(f"conductor-loop: serving /metrics on http://{host}:{port}", err=True)
    return server


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add every option of ``run`` to a command (``run`` and ``config show``)."""
    opts = [
        click.option("--handoff", metavar="DIR", help="Handoff directory to watch (created if missing)."),
        click.option("--out", metavar="DIR", help="Where porch writes packages."),
        click.option("--porch", metavar="PATH|builtin", help="Porch executable, or 'builtin' (default)."),
        click.option("--mode", type=click.Choice(["direct", "structured"]), help="Porch mode."),
        click.option("--once", is_flag=True, default=None, help="Drain the backlog, then exit."),
        click.option("--debounce", metavar="DURATION", help="Quiet period before a file counts as settled."),
        click.option("--workers", metavar="N", help="Fixed number of workers (sets min and max)."),
        click.option("--min-workers", metavar="N", help="Worker floor (default 1)."),
        click.option("--max-workers", metavar="N", help="Worker ceiling (default: CPU count)."),
        click.option("--timeout", metavar="DURATION", help="Porch timeout (default 30s)."),
        click.option("--retries", metavar="N", help="Retries of environment failures (default 2)."),
        click.option("--pattern", "patterns", metavar="GLOB", multiple=True, help="Intent file pattern; repeatable."),
        click.option("--max-file-size", metavar="SIZE", help="Largest accepted intent (default 10MiB)."),
        click.option("--intent-schema", metavar="builtin|go-compat|PATH", help="Intent rules (default builtin)."),
        click.option("--cleanup-after", metavar="DURATION", help="Remove filed intents older than this (0: never)."),
        click.option("--metrics-addr", metavar="HOST:PORT", help="Serve /metrics and health endpoints here."),
        click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format."),
        click.option("--log-level", metavar="LEVEL", help="debug, info, warning, error or critical."),
        click.option("--config", "config", metavar="FILE", help="TOML configuration file."),
        click.option("--dry-run", is_flag=True, default=None, help="List what would run, skip or fail; touch nothing."),
        click.option("--watch", type=click.Choice(["auto", "inotify", "poll"]),
                     help="How to see new files: inotify, poll (network filesystems) or auto (by filesystem)."),
        click.option("--poll-interval", metavar="DURATION", help="How often poll mode lists the handoff (1s)."),
        click.option("--executor", type=click.Choice(["local", "fleet"]),
                     help="Run porch in local worker processes (default) or on a fleet of workers (NATS)."),
        click.option("--broker", metavar="URL", help="Fleet: the NATS server (nats://HOST:4222, tls://HOST:4222)."),
        click.option("--broker-creds", metavar="FILE", help="Fleet: NATS credentials file."),
        click.option("--fleet", metavar="NAME", help="Fleet: its name (default 'default')."),
        click.option("--fleet-inflight", metavar="N", help="Fleet: most tasks out at once (default 64)."),
        click.option("--fleet-inflight-bytes", metavar="SIZE",
                     help="Fleet: most bytes of tasks (their intents) out at once; one more may cross it (64MiB)."),
        click.option("--fleet-lease", metavar="DURATION", help="Fleet: a worker's lease on a task (default 30s)."),
        click.option("--fleet-max-deliver", metavar="N", help="Fleet: deliveries before an intent fails (default 3)."),
        click.option(GO_FLAG_OPTION, "go_flags", multiple=True, hidden=True),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def given(params: dict[str, Any]) -> dict[str, Any]:
    """Only the options actually given on the command line."""
    given = {k: v for k, v in params.items() if v is not None and v != () and k != "go_flags"}
    if "patterns" in given:
        given["patterns"] = list(given["patterns"])
    return given


def resolve_or_exit(params: dict[str, Any]) -> tuple[RunConfig, dict[str, str]]:
    """The run configuration of these options (flag > env > file > default); exit 2 on an error. A value
    set by one of the Go loop's flags says so in its source (``flag -period (Go)``)."""
    try:
        cfg, sources = resolve(given(params), os.environ, params.get("config"))
    except ConfigError as exc:
        fail(EXIT_USAGE, str(exc))
    label_sources(sources, params.get("go_flags") or ())
    return cfg, sources


def handoff_of(handoff: str | None, config: str | None) -> tuple[str, tuple[str, ...]]:
    """The handoff directory (absolute) and intent patterns, layered like ``run`` (flag > env > file)."""
    flags: dict[str, Any] = {"handoff": handoff} if handoff else {}
    try:
        cfg, _ = resolve(flags, os.environ, config)
    except ConfigError as exc:
        fail(EXIT_USAGE, str(exc))
    return os.path.abspath(cfg.handoff), tuple(cfg.patterns)


handoff_option = click.option(
    "--handoff", metavar="DIR", help="Handoff directory (default: as for run: env, config file, ./handoff)."
)
config_option = click.option("--config", metavar="FILE", help="TOML configuration file (for the handoff default).")
