"""``fleet status``: a fleet's streams, consumers, tasks and workers (README, "conductor-loop fleet status")."""

from __future__ import annotations

import json
import os

import click

from conductor_loop.cli.common import EXIT_FATAL, EXIT_USAGE, fail


@click.group("fleet")
def fleet_group() -> None:
    """Inspect a fleet (run --executor fleet, and its workers)."""


@fleet_group.command("status")
@click.option("--broker", metavar="URL", help="NATS server (env CONDUCTOR_BROKER).")
@click.option("--broker-creds", metavar="FILE", help="NATS credentials file (env CONDUCTOR_BROKER_CREDS).")
@click.option("--fleet", metavar="NAME", help="Fleet name (env CONDUCTOR_FLEET; default 'default').")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def fleet_status(broker: str | None, broker_creds: str | None, fleet: str | None, as_json: bool) -> None:
    """Streams, consumers, pending and in-flight tasks, and the workers seen with their last heartbeat.

    Exits 1 when the broker cannot be reached or refuses the credentials, 2 for an unusable credentials file.

    \b
    Example:
      conductor-loop fleet status --broker nats://nats:4222 --fleet prod --json
    """
    from conductor_loop.fleet.protocol import DEFAULT_FLEET, check_fleet_name
    from conductor_loop.fleet.status import collect, render

    url = broker or os.environ.get("CONDUCTOR_BROKER", "")
    creds = broker_creds or os.environ.get("CONDUCTOR_BROKER_CREDS") or None
    name = fleet or os.environ.get("CONDUCTOR_FLEET") or DEFAULT_FLEET
    if not url:
        fail(EXIT_USAGE, "--broker is required (or env CONDUCTOR_BROKER)")
    from conductor_loop.fleet.broker import check_creds

    try:
        check_fleet_name(name)
        if creds is not None:
            check_creds(creds)
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    import asyncio

    import nats.errors

    try:
        report = collect(url, creds, name)
    except (OSError, ValueError, nats.errors.Error, asyncio.TimeoutError) as exc:
        if "authorization" in str(exc).lower():  # the server refused this client (or its missing credentials)
            fail(EXIT_FATAL, f"broker {url}: authorization refused ({exc}): check --broker-creds")
        fail(EXIT_FATAL, f"broker {url}: cannot be reached: {exc or type(exc).__name__}")
    click.echo(json.dumps(report, indent=2) if as_json else render(report))
