"""Helpers for the fleet tests: act as the ingest by hand (ensure the fleet, publish tasks, take results) and run
real worker processes (``python -m conductor_loop worker``) whose log lines the test can wait for."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import workerproc
from conductor_loop.fleet import broker
from conductor_loop.fleet.protocol import (
    MSG_ID_HEADER,
    RESULT_CONSUMER,
    TASK_CONSUMER,
    FleetNames,
    Result,
    Task,
    decode_result,
    encode_task,
    make_task,
)
from conftest import intent_body

FLEET = "t"
NAMES = FleetNames(FLEET)
CAP = 1 << 20


def ensure_fleet(url: str, *, lease: float = 2.0, max_deliver: int = 3, creds: str | None = None) -> None:
    """Create the streams, consumers and KV bucket as the ingest would."""

    async def go(nc: Any) -> None:
        limits = broker.check_limits(nc.max_payload, CAP, CAP)
        await broker.ensure(nc.jetstream(), NAMES, limits, lease=lease, max_deliver=max_deliver)

    _with(url, go, creds)


def _with(url: str, fn: Callable[[Any], Any], creds: str | None = None) -> Any:
    async def main() -> Any:
        nc = await broker.connect(url, creds)
        try:
            return await fn(nc)
        finally:
            await nc.close()

    return asyncio.run(main())


def intent_task(
    name: str = "intent-a.json", *, attempt: int = 1, mode: str = "direct", bad_sha: bool = False, **over: Any
) -> Task:
    """A task for a valid intent (``over`` changes its fields)."""
    data = json.dumps(intent_body(**over)).encode()
    sha = hashlib.sha256(data).hexdigest()
    if bad_sha:
        sha = hashlib.sha256(data + b" ").hexdigest()
    return make_task(
        f"/handoff/{name}",
        data,
        sha256=sha,
        attempt=attempt,
        mode=mode,
        timeout=30.0,
        max_result_bytes=CAP,
        scaling=True,
    )


def publish(url: str, *tasks: Task, creds: str | None = None) -> None:
    """Publish tasks as the ingest does (``Nats-Msg-Id`` = task id)."""

    async def go(nc: Any) -> None:
        js = nc.jetstream()
        for task in tasks:
            await js.publish(NAMES.task_subject, encode_task(task), headers={MSG_ID_HEADER: task.task_id})

    _with(url, go, creds)


def publish_raw(url: str, body: bytes) -> None:
    """Publish anything on the task subject (a hostile or broken publisher)."""

    async def go(nc: Any) -> None:
        await nc.jetstream().publish(NAMES.task_subject, body)

    _with(url, go)


def take_results(url: str, n: int, timeout: float = 20.0, creds: str | None = None) -> list[Result]:
    """Wait for ``n`` results, ack them (as the ingest does once it decided), return them decoded."""

    async def go(nc: Any) -> list[Result]:
        sub = await nc.jetstream().pull_subscribe_bind(RESULT_CONSUMER, stream=NAMES.result_stream)
        out: list[Result] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                msgs = await sub.fetch(n - len(out), timeout=0.5)
            except Exception:
                continue
            for msg in msgs:
                out.append(decode_result(msg.data))
                await msg.ack_sync()
        return out

    return _with(url, go, creds)  # type: ignore[no-any-return]


def counts(url: str) -> dict[str, int]:
    """Messages in the task and result streams, and the task consumer's counters."""

    async def go(nc: Any) -> dict[str, int]:
        js = nc.jetstream()
        tasks = await js.stream_info(NAMES.task_stream)
        results = await js.stream_info(NAMES.result_stream)
        c = await js.consumer_info(NAMES.task_stream, TASK_CONSUMER)
        return {
            "tasks": tasks.state.messages,
            "results": results.state.messages,
            "in_flight": c.num_ack_pending or 0,
            "redelivered": c.num_redelivered or 0,
            "delivered": c.delivered.consumer_seq if c.delivered else 0,
        }

    return _with(url, go)  # type: ignore[no-any-return]


FAKE_PORCH = """#!/bin/sh
# A porch stand-in: records its argv and CONDUCTOR_* environment in the package, sleeps, waits for a gate
# file (when given), marks start/end.
intent="$2"; out="$4"; name=$(basename "$intent")
marks="${CONDUCTOR_TEST_MARKS:-/dev/null}"
echo "start $name $$" >> "$marks"
mkdir -p "$out/pkg"
cp "$intent" "$out/pkg/intent.json"
echo "$@" > "$out/pkg/argv"
env | grep '^CONDUCTOR_' | sort > "$out/pkg/env"
[ -n "$CONDUCTOR_TEST_BIG" ] && head -c "$CONDUCTOR_TEST_BIG" /dev/urandom > "$out/pkg/big"
sleep "${CONDUCTOR_TEST_SLEEP:-0}"
if [ -n "$CONDUCTOR_TEST_GATE" ]; then while [ ! -e "$CONDUCTOR_TEST_GATE" ]; do sleep 0.05; done; fi
echo "end $name $$" >> "$marks"
exit "${CONDUCTOR_TEST_EXIT:-0}"
"""


def fake_porch(tmp: Path) -> Path:
    """A shell-script porch (see :data:`FAKE_PORCH`)."""
    path = tmp / "fake-porch"
    path.write_text(FAKE_PORCH)
    path.chmod(0o755)
    return path


class Worker(workerproc.Worker):
    """A real worker of the tests' fleet (:data:`FLEET`), its log in ``tmp``."""

    def __init__(self, tmp: Path, url: str, wid: str, *args: str, env: dict[str, str] | None = None) -> None:
        super().__init__(tmp, url, wid, *args, fleet=FLEET, env=env)


def marks(path: Path) -> list[list[str]]:
    """The fake porch's start/end lines."""
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []
