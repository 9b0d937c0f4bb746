"""Broker helpers on a real nats-server (127.0.0.1): ensure is idempotent and updates the lease, a worker
waits for the fleet, the limits check reads the server's max_payload, clients reconnect after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conductor_loop.fleet import broker
from conductor_loop.fleet.protocol import TASK_CONSUMER, FleetNames
from natsserver import NatsServer

NAMES = FleetNames("t")


async def _ensure(url: str, lease: float, max_deliver: int) -> broker.FleetInfo | None:
    nc = await broker.connect(url)
    try:
        js = nc.jetstream()
        limits = broker.check_limits(nc.max_payload, 1 << 20, 1 << 20)
        await broker.ensure(js, NAMES, limits, lease=lease, max_deliver=max_deliver)
        return await broker.fleet_info(js, NAMES)
    finally:
        await nc.close()


def test_ensure_is_idempotent_and_updates_lease_and_max_deliver(nats_server: NatsServer) -> None:
    assert asyncio.run(_ensure(nats_server.url, 2.0, 3)) == broker.FleetInfo(2.0, 3)
    assert asyncio.run(_ensure(nats_server.url, 2.0, 3)) == broker.FleetInfo(2.0, 3)
    assert asyncio.run(_ensure(nats_server.url, 5.0, 4)) == broker.FleetInfo(5.0, 4)

    async def check() -> None:
        nc = await broker.connect(nats_server.url)
        js = nc.jetstream()
        info = await js.stream_info(NAMES.task_stream)
        assert info.config.retention == "workqueue"
        assert info.config.duplicate_window == broker.DUPLICATE_WINDOW
        assert info.config.max_msg_size == (1 << 20) + 4096
        consumer = await js.consumer_info(NAMES.task_stream, TASK_CONSUMER)
        assert consumer.config.max_ack_pending == broker.MAX_ACK_PENDING
        kv_stream = await js.stream_info(f"KV_{NAMES.workers_bucket}")
        assert kv_stream.config.max_age == 50.0
        await nc.close()

    asyncio.run(check())


def test_worker_waits_until_the_ingest_creates_the_fleet(nats_server: NatsServer) -> None:
    async def run() -> broker.FleetInfo:
        nc = await broker.connect(nats_server.url)
        waited: list[bool] = []
        waiting = asyncio.create_task(
            broker.wait_for_fleet(nc.jetstream(), NAMES, retry=0.05, on_wait=lambda: waited.append(True))
        )
        await asyncio.sleep(0.3)
        assert waited == [True] and not waiting.done()
        await _ensure(nats_server.url, 1.5, 2)
        found = await asyncio.wait_for(waiting, 5)
        await nc.close()
        return found

    assert asyncio.run(run()) == broker.FleetInfo(1.5, 2)


def test_limits_check_against_a_default_server(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", max_payload=None).start()
    try:

        async def payload() -> int:
            nc = await broker.connect(server.url)
            await nc.close()
            return nc.max_payload

        max_payload = asyncio.run(payload())
        assert max_payload == 1 << 20
        with pytest.raises(broker.LimitsError, match=r"raise max_payload.*or lower --max-file-size"):
            broker.check_limits(max_payload, 10 << 20, 512 << 10)
    finally:
        server.kill()


def test_client_reconnects_after_a_restart_on_the_same_port(nats_server: NatsServer) -> None:
    port = nats_server.port
    changes: list[bool] = []

    async def run() -> None:
        async def on_change(up: bool) -> None:
            changes.append(up)

        nc = await broker.connect(nats_server.url, on_change=on_change)
        await asyncio.to_thread(nats_server.restart)
        for _ in range(100):
            if changes[-1:] == [True]:
                break
            await asyncio.sleep(0.05)
        await nc.flush(timeout=2)
        await nc.close()

    asyncio.run(run())
    assert nats_server.port == port and changes[:2] == [False, True]
