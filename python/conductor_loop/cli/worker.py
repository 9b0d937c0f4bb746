"""``worker``: a fleet worker host (README, "conductor-loop worker"; docs/operations.md, "Worker hosts")."""

from __future__ import annotations

import os
import sys

import click

from conductor_loop.cli.common import EXIT_USAGE, fail, serve_metrics


@click.command("worker")
@click.option("--broker", metavar="URL", help="NATS server: nats://HOST:4222 or tls://HOST:4222 (required).")
@click.option("--broker-creds", metavar="FILE", help="NATS credentials file (needs the nkeys package).")
@click.option("--fleet", metavar="NAME", help="Fleet name, as given to the ingest (default 'default').")
@click.option("--porch", metavar="PATH|builtin", help="Porch executable, or 'builtin' (default).")
@click.option("--slots", metavar="N", help="Tasks run at once (default 1); a task is pulled only for a free slot.")
@click.option("--timeout", metavar="DURATION", help="Porch timeout (default 30s; a task's smaller one wins).")
@click.option("--metrics-addr", metavar="HOST:PORT", help="Serve /metrics and health endpoints here.")
@click.option("--worker-id", metavar="ID", help="This worker's id (default HOSTNAME:PID).")
@click.option("--tmp-dir", metavar="DIR", help="Where private per-task directories go (default: $TMPDIR).")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format.")
@click.option("--log-level", metavar="LEVEL", help="debug, info, warning, error or critical.")
@click.option("--config", "config", metavar="FILE", help="TOML file (default /etc/conductor-loop/worker.toml).")
def worker_cmd(config: str | None, **flags: str | None) -> None:
    """Run porch for a fleet's tasks: pull from NATS JetStream, heartbeat, return the package.

    Stateless: give it a broker and a fleet name; the ingest host (run --executor fleet) owns the
    handoff, the lease and max-deliver. SIGTERM finishes the runs in flight, then exits 0.

    \b
    Example:
      conductor-loop worker --broker nats://nats:4222 --fleet prod --slots 4 --porch /usr/local/bin/porch
    """
    from conductor_loop.config import ConfigError
    from conductor_loop.fleet.workerconfig import resolve

    try:
        opts = resolve(flags, os.environ, config)
    except ConfigError as exc:
        fail(EXIT_USAGE, str(exc))
    sys.exit(_serve(opts))


def _serve(opts: object) -> int:
    from conductor_loop.fleet.worker import run_worker
    from conductor_loop.fleet.workerconfig import WorkerOptions
    from conductor_loop.fleet.workermetrics import WorkerHealth, WorkerMetrics
    from conductor_loop.logs import setup_logging

    assert isinstance(opts, WorkerOptions)
    setup_logging(opts.log_format, opts.log_level)
    metrics, health = WorkerMetrics(), WorkerHealth(live_timeout=max(30.0, opts.timeout + 15.0))
    server = serve_metrics(opts.metrics_addr, metrics, health)
    try:
        return run_worker(opts, metrics, health)
    finally:
        if server is not None:
            server.stop()
