"""What ``conductor-loop fleet status`` reports: the fleet's streams, consumers, pending and in-flight tasks,
and the workers seen with their last heartbeat (README, "conductor-loop fleet status")."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from conductor_loop.fleet import broker
from conductor_loop.fleet.protocol import RESULT_CONSUMER, TASK_CONSUMER, FleetNames, ProtocolError, decode_beat
from conductor_loop.units import format_duration, format_size


async def gather(url: str, creds: str | None, fleet: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The report as a JSON-ready dict; raises the client's error when the broker cannot be reached."""
    names = FleetNames(fleet)
    nc = await broker.connect(
        url,
        creds,
        name="conductor-loop fleet status",
        connect_timeout=timeout,
        initial_timeout=timeout,
        reconnect=False,
    )
    try:
        js = nc.jetstream(timeout=timeout)
        report: dict[str, Any] = {"fleet": fleet, "broker": url, "streams": [], "consumers": [], "workers": []}
        for stream, consumer, key in (
            (names.task_stream, TASK_CONSUMER, "tasks"),
            (names.result_stream, RESULT_CONSUMER, "results"),
        ):
            report[key] = await _stream(js, report, stream, consumer)
        if not report["streams"]:
            report["problem"] = f"fleet {fleet!r} not created yet (no stream {names.task_stream}): start the ingest"
        report["workers"] = await _workers(js, names)
        return report
    finally:
        await nc.close()


async def _stream(js: JetStreamContext, report: dict[str, Any], stream: str, consumer: str) -> dict[str, int] | None:
    """Append one stream and its consumer to ``report``; the consumer's pending and in-flight counts."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return None
    report["streams"].append(
        {
            "name": stream,
            "subjects": list(info.config.subjects or []),
            "messages": info.state.messages,
            "bytes": info.state.bytes,
            "consumers": info.state.consumer_count,
        }
    )
    try:
        c = await js.consumer_info(stream, consumer)
    except NotFoundError:
        return None
    counts = {"pending": int(c.num_pending or 0), "in_flight": int(c.num_ack_pending or 0)}
    report["consumers"].append(
        {
            "stream": stream,
            "name": consumer,
            **counts,
            "redelivered": int(c.num_redelivered or 0),
            "waiting_pulls": int(c.num_waiting or 0),
            "ack_wait_s": c.config.ack_wait,
            "max_deliver": c.config.max_deliver,
        }
    )
    return counts


async def _workers(js: JetStreamContext, names: FleetNames) -> list[dict[str, Any]]:
    try:
        kv: KeyValue = await js.key_value(names.workers_bucket)
        keys = await kv.keys()
    except (NotFoundError, NoKeysError):
        return []
    out = []
    for key in sorted(keys):
        try:
            entry = await kv.get(key)
            beat = decode_beat(entry.value or b"")
        except (NotFoundError, ProtocolError):
            continue
        out.append({**{k: getattr(beat, k) for k in type(beat).__slots__}, "age_s": _age(beat.heartbeat_at)})
    return out


def _age(stamp: str) -> float | None:
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return round(max(0.0, time.time() - when), 3)


def collect(url: str, creds: str | None, fleet: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """:func:`gather` on a fresh event loop."""
    return asyncio.run(gather(url, creds, fleet, timeout=timeout))


def render(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [f"fleet {report['fleet']} on {report['broker']}"]
    if report.get("problem"):
        lines.append(f"  {report['problem']}")
    lines.append("streams:")
    for s in report["streams"]:
        lines.append(f"  {s['name']:<28} messages {s['messages']:<6} {format_size(s['bytes'])}")
    lines.append("consumers:")
    for c in report["consumers"]:
        lease = f"  lease {format_duration(c['ack_wait_s'])}" if c.get("ack_wait_s") else ""
        lines.append(
            f"  {c['stream'] + '/' + c['name']:<36} pending {c['pending']:<5} in flight {c['in_flight']:<5} "
            f"redelivered {c['redelivered']}{lease}"
        )
    lines.append(f"workers ({len(report['workers'])}):")
    for w in report["workers"]:
        age = "" if w["age_s"] is None else f" ({w['age_s']:.1f}s ago)"
        lines.append(
            f"  {w['worker']:<28} slots {w['slots']} busy {w['busy']}  last heartbeat {w['heartbeat_at']}{age}"
        )
    return "\n".join(lines)
