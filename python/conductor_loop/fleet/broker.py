"""The broker: connecting to NATS, ensuring a fleet's streams, consumers and KV bucket, the limits check.

Everything here is asyncio (nats-py); callers run it on their one event loop. :func:`ensure` is idempotent
and is the ingest's job (it owns the lease and max-deliver); a worker calls :func:`wait_for_fleet` and reads
the lease from the task consumer (docs/operations.md, "Fleet mode").
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as jsapi
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from conductor_loop.fleet.protocol import (
    RESULT_CONSUMER,
    RESULT_OVERHEAD,
    TASK_CONSUMER,
    TASK_OVERHEAD,
    FleetNames,
)

DUPLICATE_WINDOW = 120.0
"""Seconds the task stream remembers a ``Nats-Msg-Id`` (a republish inside it is dropped)."""
MAX_ACK_PENDING = 1024
"""The task consumer's floor for unacknowledged deliveries."""
KV_AGE_LEASES = 10
"""A worker's heartbeat key expires after this many leases without a put."""
_ERR_STREAM_IN_USE = 10058  # "stream name already in use with a different configuration"


class LimitsError(ValueError):
    """The server's ``max_payload`` is too small for the configured sizes; the text says what to raise."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The largest task and result messages the fleet will publish, checked against the server."""

    max_task_msg: int
    max_result_msg: int


def check_limits(max_payload: int, max_file_size: int, max_result_bytes: int) -> Limits:
    """The message sizes for ``--max-file-size`` and the result cap, or :class:`LimitsError` naming which
    setting to change when the server's ``max_payload`` cannot carry them."""
    limits = Limits(max_file_size + TASK_OVERHEAD, max_result_bytes + RESULT_OVERHEAD)
    if limits.max_task_msg > max_payload:
        raise LimitsError(
            f"nats-server max_payload is {max_payload} bytes, but a task can take {limits.max_task_msg} "
            f"(--max-file-size {max_file_size} + {TASK_OVERHEAD}): raise max_payload in the server's "
            "configuration or lower --max-file-size"
        )
    if limits.max_result_msg > max_payload:
        raise LimitsError(
            f"nats-server max_payload is {max_payload} bytes, but a result can take {limits.max_result_msg} "
            f"(result cap {max_result_bytes} + {RESULT_OVERHEAD}): raise max_payload in the server's "
            "configuration or lower the result cap"
        )
    return limits


def _creds_block(text: str, label: str) -> str | None:
    found = re.search(rf"-{{3,}}BEGIN {label}-{{3,}}\s*\n\s*(\S+)\s*\n\s*-{{3,}}END {label}-{{3,}}", text)
    return found.group(1) if found else None


def check_creds(path: str) -> None:
    """Raise ``ValueError`` (one line, naming ``path``) unless it is a readable NATS credentials file: a user
    JWT block and a user NKey seed block that decodes. The commands call it once at start (exit 2); a file
    that goes missing later is a connect failure, retried like one."""
    if importlib.util.find_spec("nkeys") is None:
        raise ValueError("--broker-creds needs the 'nkeys' package (pip install nkeys)")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError as exc:
        raise ValueError(f"--broker-creds {path!r}: {exc.strerror or exc}") from None
    jwt, seed = _creds_block(text, "NATS USER JWT"), _creds_block(text, "USER NKEY SEED")
    if jwt is None or seed is None or jwt.count(".") != 2:
        raise ValueError(f"--broker-creds {path!r}: not a NATS credentials file (a user JWT and an NKey seed)")
    import nkeys  # type: ignore[import-untyped]

    try:
        nkeys.from_seed(seed.encode())
    except Exception:  # noqa: BLE001 - nkeys raises several kinds for a bad seed
        raise ValueError(f"--broker-creds {path!r}: the NKey seed is not valid") from None


async def connect(
    url: str,
    creds: str | None = None,
    *,
    name: str = "conductor-loop",
    on_change: Callable[[bool], Awaitable[None]] | None = None,
    connect_timeout: float = 2.0,
    initial_timeout: float = 5.0,
    reconnect: bool = True,
) -> NATS:
    """Connect to ``url`` (``nats://`` or ``tls://``; ``creds``: a NATS credentials file), reconnecting
    forever afterwards (``reconnect=False``: fail at once instead, for one-shot commands).
    ``on_change(up)`` is awaited on each disconnect and reconnect.

    Raises ``ValueError`` for a credentials file that cannot be used, ``ConnectionError`` when no server
    answered within ``initial_timeout`` seconds, or the client's error.
    """
    if creds is not None and importlib.util.find_spec("nkeys") is None:
        raise ValueError("--broker-creds needs the 'nkeys' package (pip install nkeys)")

    async def down() -> None:
        if on_change is not None:
            await on_change(False)

    async def up() -> None:
        if on_change is not None:
            await on_change(True)

    async def error(exc: Exception) -> None:  # logged by the callers' on_change; never raise here
        return None

    options: dict[str, Any] = {"user_credentials": creds} if creds else {}
    connecting = nats.connect(
        servers=[url],
        name=name,
        allow_reconnect=reconnect,
        max_reconnect_attempts=-1 if reconnect else 1,
        reconnect_time_wait=0.25,
        connect_timeout=connect_timeout,  # type: ignore[arg-type]
        ping_interval=5,
        max_outstanding_pings=2,
        disconnected_cb=down,
        reconnected_cb=up,
        error_cb=error,
        **options,
    )
    try:  # the client retries its first connect forever too: bound it
        return await asyncio.wait_for(connecting, timeout=initial_timeout)
    except asyncio.TimeoutError:
        raise ConnectionError(f"no NATS server answered at {url} within {initial_timeout:g}s") from None


async def _ensure_stream(js: JetStreamContext, config: jsapi.StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != _ERR_STREAM_IN_USE:
            raise
        await js.update_stream(config)


def _work_queue(name: str, subject: str, max_msg: int) -> jsapi.StreamConfig:
    return jsapi.StreamConfig(
        name=name,
        subjects=[subject],
        retention=jsapi.RetentionPolicy.WORK_QUEUE,
        storage=jsapi.StorageType.FILE,
        discard=jsapi.DiscardPolicy.NEW,
        duplicate_window=DUPLICATE_WINDOW,
        max_msg_size=max_msg,
    )


async def ensure(
    js: JetStreamContext,
    names: FleetNames,
    limits: Limits,
    *,
    lease: float,
    max_deliver: int,
    max_ack_pending: int = MAX_ACK_PENDING,
    max_task_bytes: int | None = None,
) -> KeyValue:
    """Create or update the fleet's streams, consumers and workers bucket; return the bucket.

    ``max_task_bytes`` (optional) caps the task stream's total size, so publishing fails (and the ingest
    backs off) when it is full. Idempotent: a second call with the same values changes nothing.
    """
    tasks = _work_queue(names.task_stream, names.task_subject, limits.max_task_msg)
    if max_task_bytes is not None:
        tasks.max_bytes = max_task_bytes
    await _ensure_stream(js, tasks)
    await _ensure_stream(js, _work_queue(names.result_stream, names.result_subject, limits.max_result_msg))
    kv = await ensure_workers_bucket(js, names, lease)
    await js.add_consumer(
        names.result_stream,
        jsapi.ConsumerConfig(durable_name=RESULT_CONSUMER, ack_policy=jsapi.AckPolicy.EXPLICIT, ack_wait=60.0),
    )
    await js.add_consumer(
        names.task_stream,
        jsapi.ConsumerConfig(
            durable_name=TASK_CONSUMER,
            ack_policy=jsapi.AckPolicy.EXPLICIT,
            ack_wait=lease,
            max_deliver=max_deliver,
            max_ack_pending=max(MAX_ACK_PENDING, max_ack_pending),
        ),
    )
    return kv


async def ensure_workers_bucket(js: JetStreamContext, names: FleetNames, lease: float) -> KeyValue:
    """The workers KV bucket (history 1, entries expire after ``KV_AGE_LEASES`` leases), created or updated."""
    ttl = KV_AGE_LEASES * lease
    try:
        return await js.create_key_value(bucket=names.workers_bucket, history=1, ttl=ttl)
    except BadRequestError as exc:
        if exc.err_code != _ERR_STREAM_IN_USE:
            raise
    kv = await js.key_value(names.workers_bucket)
    info = await js.stream_info(f"KV_{names.workers_bucket}")
    info.config.max_age = ttl
    info.config.duplicate_window = min(DUPLICATE_WINDOW, ttl)
    await js.update_stream(info.config)
    return kv


@dataclass(frozen=True, slots=True)
class FleetInfo:
    """What a worker learns from the broker at start: the lease (the task consumer's ``ack_wait``)."""

    lease: float
    max_deliver: int


async def fleet_info(js: JetStreamContext, names: FleetNames) -> FleetInfo | None:
    """The task consumer's lease and max-deliver, or ``None`` while the ingest has not created it."""
    try:
        info = await js.consumer_info(names.task_stream, TASK_CONSUMER)
    except NotFoundError:
        return None
    return FleetInfo(lease=float(info.config.ack_wait or 30.0), max_deliver=int(info.config.max_deliver or -1))


async def wait_for_fleet(
    js: JetStreamContext, names: FleetNames, *, retry: float = 1.0, on_wait: Callable[[], None] | None = None
) -> FleetInfo:
    """Wait until the fleet's task consumer exists (the ingest creates it); ``on_wait`` is called once."""
    told = False
    while True:
        try:
            found = await fleet_info(js, names)
        except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.errors.NoRespondersError):
            found = None
        if found is not None:
            return found
        if not told and on_wait is not None:
            on_wait()
            told = True
        await asyncio.sleep(retry)
