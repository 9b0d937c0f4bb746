"""The bridge: ONE thread running the nats-py asyncio loop for the synchronous supervisor.

The supervisor never waits on the broker. It hands the bridge commands (publish a task, ack or delete
a message, ask whether a task is still in its stream) that return at once, and reads what came back as
data (:meth:`Bridge.events`) when :meth:`Bridge.fileno` is readable in THE wait (docs/ARCHITECTURE.md,
"Fleet mode"). The bridge connects (forever, with a retry), ensures the fleet's streams and consumers
(:func:`conductor_loop.fleet.broker.ensure`, again after each reconnect), pulls results from the
``ingest`` consumer (the pull subscription is rebuilt after errors and reconnects, nats.py#504) and
listens for the task consumer's max-deliveries advisory. It decides nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from nats.js import api as jsapi

from conductor_loop.fleet import broker
from conductor_loop.fleet.protocol import MSG_ID_HEADER, RESULT_CONSUMER, RESULT_OVERHEAD, FleetNames

#: Results pulled at once, and how long one pull waits.
FETCH_BATCH = 64
FETCH_WAIT = 1.0
#: Seconds between connection attempts while the broker cannot be reached.
RETRY = 1.0
#: Seconds a publish waits for its PubAck.
PUBLISH_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """Where the broker is and what the fleet's streams and consumers must be."""

    url: str
    creds: str | None
    names: FleetNames
    lease: float
    max_deliver: int
    max_file_size: int
    max_inflight: int


@dataclass(frozen=True, slots=True)
class BrokerState:
    """The broker became usable (streams ensured; ``result_cap``: the largest archive a result may carry)
    or unusable (``reason``)."""

    up: bool
    reason: str = ""
    result_cap: int = 0


@dataclass(frozen=True, slots=True)
class LimitsFailed:
    """The server's ``max_payload`` cannot carry the configured sizes (the text says which to raise)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Published:
    """A task is stored in the task stream at ``seq`` (``duplicate``: it was there already)."""

    task_id: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class PublishFailed:
    """A task could not be published (broker down, stream full); it is to be published again later."""

    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResultIn:
    """A result message; ``token`` is handed back to :meth:`Bridge.ack` once it is decided."""

    body: bytes
    token: Any


@dataclass(frozen=True, slots=True)
class MaxDelivered:
    """The task at ``stream_seq`` reached max-deliver without being acked."""

    stream_seq: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class Probed:
    """Whether the task ``task_id`` is still stored at ``seq`` in the task stream."""

    task_id: str
    seq: int
    present: bool


Event = BrokerState | LimitsFailed | Published | PublishFailed | ResultIn | MaxDelivered | Probed


class Bridge:
    """The broker side of fleet mode, on its own thread; the loop talks to it by data only."""

    def __init__(self, cfg: BridgeConfig) -> None:
        self.cfg = cfg
        self._thread = threading.Thread(target=self._run, name="conductor-fleet-bridge", daemon=True)
        self._events: deque[Event] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._quit: asyncio.Event | None = None
        self._nc: Any = None
        self._js: Any = None
        self._consume = threading.Event()
        self._rebuild = True
        self._advisories: Any = None

    # -- the loop's side (never blocks) ----------------------------------------------------------
    def fileno(self) -> int:
        """Readable when events are waiting (for THE wait)."""
        return self._wake_r

    def wake(self) -> None:
        """Make :meth:`fileno` readable (the loop uses it for results it decided itself)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def events(self) -> list[Event]:
        """What happened since the last call."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        out: list[Event] = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def publish(self, task_id: str, body: bytes, msg_id: str | None = None) -> None:
        """Publish a task (``Nats-Msg-Id``: ``msg_id``, by default the task id); answered by ``Published`` or
        ``PublishFailed``."""
        self._call(self._publish(task_id, body, msg_id or task_id))

    def ack(self, token: Any) -> None:
        """Acknowledge a result message (it is decided)."""
        self._call(self._ack(token))

    def delete_task(self, seq: int) -> None:
        """Remove the task at ``seq`` from the task stream (after max-deliver)."""
        self._call(self._delete(seq))

    def probe(self, task_id: str, seq: int) -> None:
        """Ask whether ``task_id`` is still stored at ``seq``; answered by ``Probed``."""
        self._call(self._probe(task_id, seq))

    def consume(self) -> None:
        """Start pulling results (after the loop has adopted what an earlier run left in flight)."""
        self._consume.set()

    def start_and_wait(self, timeout: float) -> None:
        """Start the thread; wait up to ``timeout`` for the first connection (the loop starts either way)."""
        self._thread.start()
        self._started.wait(timeout)

    def stop(self) -> None:
        """Close the connection and end the thread."""
        if self._thread.is_alive() and self._quit is not None:
            self._loop.call_soon_threadsafe(self._quit.set)
            self._thread.join(timeout=10.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop is closed (stopping): nothing more goes out
            coro.close()

    # -- the thread ------------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        self._events.append(event)
        self.wake()

    def _run(self) -> None:
        """Thread body: the asyncio loop until :meth:`stop`."""
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _main(self) -> None:
        self._quit = asyncio.Event()
        tasks = [asyncio.create_task(self._connection()), asyncio.create_task(self._results())]
        await self._quit.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 5.0)

    async def _connection(self) -> None:
        """Connect (retrying), then ensure the fleet; report each change of the broker's state."""
        told = ""
        while self._nc is None:
            try:
                self._nc = await broker.connect(self.cfg.url, self.cfg.creds, name="conductor-loop ingest",
                                                on_change=self._changed)
            except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
                reason = f"cannot reach the broker at {self.cfg.url}: {type(exc).__name__}: {exc}"
                if reason != told:
                    self._emit(BrokerState(False, reason))
                    told = reason
                self._started.set()
                await asyncio.sleep(RETRY)
        self._js = self._nc.jetstream()
        self._advisories = await self._nc.subscribe(self.cfg.names.max_deliveries_subject, cb=self._advisory)
        await self._ensure()
        self._started.set()

    async def _ensure(self) -> None:
        payload = int(self._nc.max_payload)
        cap = payload - RESULT_OVERHEAD
        try:
            limits = broker.check_limits(payload, self.cfg.max_file_size, max(1, cap))
        except broker.LimitsError as exc:
            self._emit(LimitsFailed(str(exc)))
            return
        while True:
            try:
                await broker.ensure(self._js, self.cfg.names, limits, lease=self.cfg.lease,
                                    max_deliver=self.cfg.max_deliver, max_ack_pending=self.cfg.max_inflight)
                break
            except Exception as exc:  # noqa: BLE001 - JetStream not ready yet (restart): retried
                self._emit(BrokerState(False, f"cannot set up the fleet's streams: {type(exc).__name__}: {exc}"))
                await asyncio.sleep(RETRY)
        with contextlib.suppress(Exception):  # a result the ingest took and did not ack (it died) comes back
            await self._js.add_consumer(self.cfg.names.result_stream, jsapi.ConsumerConfig(  # after a lease
                durable_name=RESULT_CONSUMER, ack_policy=jsapi.AckPolicy.EXPLICIT, ack_wait=self.cfg.lease))
        self._rebuild = True
        self._emit(BrokerState(True, "connected", cap))

    async def _changed(self, up: bool) -> None:
        if up:
            asyncio.get_running_loop().create_task(self._ensure())
        else:
            self._emit(BrokerState(False, f"lost the connection to the broker at {self.cfg.url}"))

    async def _results(self) -> None:
        """Pull results while connected; the subscription is made again after any error."""
        sub: Any = None
        while True:
            if not self._consume.is_set() or self._js is None or not self._nc.is_connected:
                await asyncio.sleep(0.1)
                continue
            try:
                if sub is None or self._rebuild:
                    self._rebuild = False
                    sub = await self._js.pull_subscribe_bind(RESULT_CONSUMER, self.cfg.names.result_stream)
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a timeout, or the server went away: pull again
                if type(exc).__name__ != "TimeoutError":
                    sub = None
                    await asyncio.sleep(0.2)
                continue
            for m in msgs:
                self._emit(ResultIn(bytes(m.data), m))

    async def _publish(self, task_id: str, body: bytes, msg_id: str) -> None:
        try:
            if self._js is None:
                raise ConnectionError("not connected")
            ack = await self._js.publish(self.cfg.names.task_subject, body, timeout=PUBLISH_TIMEOUT,
                                         headers={MSG_ID_HEADER: msg_id})
        except Exception as exc:  # noqa: BLE001 - every failure is a retry later, with a reason
            self._emit(PublishFailed(task_id, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
            return
        self._emit(Published(task_id, int(ack.seq), bool(ack.duplicate)))

    async def _ack(self, msg: Any) -> None:
        with contextlib.suppress(Exception):  # not acked: redelivered, then counted as a duplicate
            await msg.ack()

    async def _delete(self, seq: int) -> None:
        with contextlib.suppress(Exception):  # gone already, or retried at the next advisory
            await self._js.delete_msg(self.cfg.names.task_stream, seq)

    async def _probe(self, task_id: str, seq: int) -> None:
        present = True  # when in doubt (broker down), the task is not taken for lost
        try:
            msg = await self._js.get_msg(self.cfg.names.task_stream, seq)
            present = (msg.headers or {}).get(MSG_ID_HEADER) == task_id
        except Exception as exc:  # noqa: BLE001
            if type(exc).__name__ == "NotFoundError":
                present = False
        self._emit(Probed(task_id, seq, present))

    async def _advisory(self, msg: Any) -> None:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            doc = json.loads(msg.data)
            self._emit(MaxDelivered(int(doc["stream_seq"]), int(doc.get("deliveries", 0))))



def limits_at_start(url: str, creds: str | None, max_file_size: int, timeout: float = 2.0) -> bool:
    """Check the server's ``max_payload`` against ``--max-file-size`` before the loop starts: False when the
    broker cannot be reached now (the loop starts and waits for it); raises ``broker.LimitsError``."""

    async def check() -> int | None:
        try:
            nc = await asyncio.wait_for(broker.connect(url, creds, name="conductor-loop ingest check",
                                                       connect_timeout=timeout), timeout + 1.0)
        except Exception:  # noqa: BLE001 - unreachable now: the loop waits for it
            return None
        payload = int(nc.max_payload)
        with contextlib.suppress(Exception):
            await nc.close()
        return payload

    payload = asyncio.run(check())
    if payload is None:
        return False
    broker.check_limits(payload, max_file_size, max(1, payload - RESULT_OVERHEAD))
    return True
