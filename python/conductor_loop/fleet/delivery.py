"""One delivery of a task on a worker host: run it on a thread, keep the lease, deliver the result, ack.

Order (docs/operations.md, "Worker hosts"): heartbeat (an in-progress ack, confirmed by a flush) every
lease/3 while porch runs; on a lost lease kill porch and publish nothing, ack nothing (self-fencing);
otherwise publish the result (``Nats-Msg-Id: r.<task_id>.<delivery>``), wait for the broker's PubAck, and
only then ack the task. All on the worker's event loop; porch runs on a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import APIError

from conductor_loop.fleet.fence import Lease
from conductor_loop.fleet.protocol import (
    MSG_ID_HEADER,
    FleetNames,
    ProtocolError,
    Result,
    Task,
    decode_task,
    encode_result,
    result_msg_id,
)
from conductor_loop.fleet.runner import Ran, TaskRunner, kill_run, run_tag
from conductor_loop.fleet.workermetrics import WorkerMetrics
from conductor_loop.logs import log_event

_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    asyncio.TimeoutError,
)
_RETRY_S = 0.2


@dataclass
class Context:
    """What every delivery of one worker host shares."""

    nc: NATS
    names: FleetNames
    runner: TaskRunner
    metrics: WorkerMetrics
    worker_id: str
    lease: Callable[[], float]


async def handle(ctx: Context, msg: Msg) -> str:
    """Run one delivered task to its end; returns the outcome counted (success, failed, rejected, lost)."""
    received = time.monotonic()
    delivery = int(msg.metadata.num_delivered or 1)
    try:
        task = decode_task(msg.data)
    except ProtocolError as exc:
        log_event("fleet.worker.bad_task", level=30, worker=ctx.worker_id, reason=str(exc), delivery=delivery)
        await _quietly(msg.term())  # never valid: no redelivery
        return _count(ctx, "rejected")
    lease = Lease(ctx.lease(), received_at=received)
    tag = run_tag(task, delivery)
    run = asyncio.ensure_future(asyncio.to_thread(ctx.runner.run, task, delivery, tag))
    if not await _keep_lease(ctx, msg, lease, run):
        await asyncio.to_thread(kill_run, tag)
    ran: Ran = await run
    ctx.metrics.execution_seconds.observe(ran.result.duration_ms / 1000.0)
    if lease.lost() or not await _deliver(ctx, msg, lease, task, ran.result):
        return _lost(ctx, task, delivery)
    log_event(
        "fleet.worker.task",
        intent=task.name,
        sha256=task.sha256,
        worker=ctx.worker_id,
        duration_ms=ran.result.duration_ms,
        outcome=ran.outcome,
        attempt=task.attempt,
        delivery=delivery,
        message=ran.result.message,
    )
    return _count(ctx, ran.outcome)


def _count(ctx: Context, outcome: str) -> str:
    ctx.metrics.tasks_total.labels(outcome=outcome).inc()
    return outcome


def _lost(ctx: Context, task: Task, delivery: int) -> str:
    ctx.metrics.leases_lost_total.inc()
    log_event(
        "fleet.worker.lease_lost",
        level=30,
        intent=task.name,
        sha256=task.sha256,
        worker=ctx.worker_id,
        attempt=task.attempt,
        delivery=delivery,
        outcome="lost",
    )
    return _count(ctx, "lost")


async def _quietly(aw: object) -> None:
    try:
        await aw  # type: ignore[misc]
    except (*_TRANSIENT, APIError, nats.errors.Error):
        pass


async def _beat(ctx: Context, msg: Msg, lease: Lease) -> None:
    """Send one heartbeat if one is due; the lease is extended only when the broker confirmed it."""
    if not lease.due():
        return
    sent = lease.sending()
    try:
        await msg.in_progress()
        await ctx.nc.flush(timeout=max(0.05, lease.remaining()))  # type: ignore[arg-type]
    except (*_TRANSIENT, nats.errors.Error):
        return
    lease.confirmed(sent)


async def _keep_lease(ctx: Context, msg: Msg, lease: Lease, run: asyncio.Future[Ran]) -> bool:
    """Heartbeat until ``run`` is done; False as soon as the lease is lost (the caller kills porch)."""
    while not run.done():
        if lease.lost():
            return False
        await _beat(ctx, msg, lease)
        await asyncio.wait({run}, timeout=max(0.01, lease.wait()))
    return not lease.lost()


async def _deliver(ctx: Context, msg: Msg, lease: Lease, task: Task, result: Result) -> bool:
    """Publish the result (until the broker stored it), then ack the task; False when the lease was lost first."""
    js = ctx.nc.jetstream()
    headers = {MSG_ID_HEADER: result_msg_id(task.task_id, result.delivery)}
    body = encode_result(result)
    told = False
    while True:
        if lease.lost():
            return False
        await _beat(ctx, msg, lease)
        try:
            await js.publish(
                ctx.names.result_subject, body, timeout=max(0.05, min(2.0, lease.remaining())), headers=headers
            )
            break
        except (APIError, nats.errors.MaxPayloadError) as exc:  # too large, stream full: a small failure result
            reason = str(getattr(exc, "description", None) or exc or "larger than the server's max_payload")
            if not told:
                log_event(
                    "fleet.worker.publish_failed", level=30, intent=task.name, worker=ctx.worker_id, reason=reason
                )
                told = True
            if result.archive:
                result = _unstorable(result, reason)
                body = encode_result(result)
            elif getattr(exc, "code", None) != 503:
                return False  # not even a small result is taken: the task is redelivered after the lease
        except (*_TRANSIENT, nats.errors.Error):
            pass
        await asyncio.sleep(min(_RETRY_S, lease.remaining()))
    return await _ack(msg, lease)


def _unstorable(result: Result, reason: str) -> Result:
    return replace(
        result,
        ok=False,
        retryable=False,
        archive=b"",
        archive_info=None,
        message=f"the result could not be stored by the broker: {reason}",
    )


async def _ack(msg: Msg, lease: Lease) -> bool:
    """Ack the task (the result is stored); a lost ack only means a redelivery and a dropped duplicate."""
    while not lease.lost():
        try:
            await msg.ack_sync(timeout=max(0.05, min(2.0, lease.remaining())))
            return True
        except (*_TRANSIENT, nats.errors.Error):
            await asyncio.sleep(min(_RETRY_S, lease.remaining()))
    return True
