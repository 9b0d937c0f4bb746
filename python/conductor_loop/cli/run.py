"""``conductor-loop run``: the loop, a dry run, and the progress bar of ``--once`` on a terminal."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from conductor_loop.cli.common import (
    EXIT_FAILURES,
    EXIT_FATAL,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    given,
    resolve_or_exit,
    run_options,
    serve_metrics,
)
from conductor_loop.config import RunConfig

RUN_EXAMPLE = """
\b
Examples:
  conductor-loop run --handoff /var/lib/conductor/handoff --out /var/lib/conductor/out
  conductor-loop run --once --porch /usr/local/bin/porch --mode structured
  conductor-loop run -handoff ./handoff -porch builtin -once        # Go loop spellings
"""


@click.command(epilog=RUN_EXAMPLE)
@run_options
def run(**params: Any) -> None:
    """Run the loop: watch (default) or drain the backlog once (--once)."""
    from conductor_loop.executor import load_executor, resolve_porch
    from conductor_loop.logs import setup_logging
    from conductor_loop.warmup import warm_workers

    cfg, _sources = resolve_or_exit(params)
    executor = None
    try:
        if cfg.executor == "local":  # in fleet mode porch runs (and is checked) on the workers
            cfg.porch = resolve_porch(cfg.porch)
            executor = load_executor(cfg.porch, cfg.mode)  # a plug-in that cannot load fails here, not in workers
    except Exception as exc:  # noqa: BLE001 - any failure to build the executor is a configuration error
        fail(EXIT_USAGE, f"--porch {cfg.porch!r}: {exc}" if "porch" not in str(exc) else str(exc))
    try:
        setup_logging(cfg.log_format, cfg.log_level)
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    if cfg.dry_run:
        sys.exit(_dry_run(cfg))
    if cfg.executor == "fleet":
        _check_fleet(cfg)
    else:  # before the loop's own imports: the workers' forkserver boots meanwhile
        warm_workers(cfg.handoff, tuple(cfg.patterns), cfg.once)
    sys.exit(_run_loop(cfg, params, executor))


def _run_loop(cfg: RunConfig, params: dict[str, Any], executor: Any) -> int:
    from conductor_loop.executor import resolve_porch
    from conductor_loop.health import Health
    from conductor_loop.lock import LockHeld
    from conductor_loop.meters import Meters, Unserved
    from conductor_loop.records import FatalError
    from conductor_loop.supervisor import Supervisor

    metrics: Meters = Unserved()
    if cfg.metrics_addr:  # without an endpoint nothing could read a count: prometheus-client is not even imported
        from conductor_loop.metrics import Metrics

        metrics = Metrics()
    health = Health(live_timeout=max(30.0, cfg.timeout + 15.0))
    server = serve_metrics(cfg.metrics_addr, metrics, health)
    progress = Progress(enabled=cfg.once and sys.stderr.isatty())

    def reload() -> RunConfig:
        from conductor_loop.config import resolve

        new, _ = resolve(given(params), os.environ, params.get("config"))  # raises ConfigError
        if new.executor == "local":
            new.porch = resolve_porch(new.porch)
        return new

    sup = Supervisor(cfg, metrics=metrics, health=health, reload=reload, on_outcome=progress.update,
                     executor=executor)
    try:
        with progress:
            summary = sup.run()
    except LockHeld as exc:
        fail(EXIT_USAGE, str(exc))
    except FatalError as exc:
        fail(EXIT_FATAL, str(exc))
    finally:
        if server is not None:
            server.stop()
    if cfg.once:
        click.echo(summary.line())
        return EXIT_FAILURES if summary.failed else EXIT_OK
    return EXIT_OK


def _check_fleet(cfg: RunConfig) -> None:
    """The credentials file and the broker's limits against --max-file-size (exit 2 saying which to fix);
    unreachable: one line."""
    from conductor_loop.fleet.bridge import limits_at_start
    from conductor_loop.fleet.broker import LimitsError, check_creds

    try:
        if cfg.broker_creds:
            check_creds(cfg.broker_creds)  # before the reachability check, which swallows connect errors
        if not limits_at_start(cfg.broker or "", cfg.broker_creds, cfg.max_file_size):
            click.echo(f"conductor-loop: broker {cfg.broker} unreachable; starting anyway, /readyz fails until "
                       "it answers", err=True)
    except (LimitsError, ValueError) as exc:
        fail(EXIT_USAGE, str(exc))


class Progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("intents"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("intents", total=None)
        return self

    def update(self, summary: Any, total: int) -> None:
        """Called by the loop (through its telemetry) after each filed intent."""
        if self._bar is not None:
            self._bar.update(self._task, completed=summary.total, total=max(total, summary.total))

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _dry_run(cfg: RunConfig) -> int:
    """List what a run would do with each intent, touching nothing (see :mod:`conductor_loop.cli.dryrun`)."""
    from conductor_loop.cli.dryrun import dry_run

    return dry_run(cfg, click.echo)
