"""Fleet wire protocol: tasks, results and heartbeats round-trip; malformed messages are refused with a reason;
the limits check names the setting to raise."""

from __future__ import annotations

import hashlib
import json

import pytest

from conductor_loop.fleet import protocol as p
from conductor_loop.fleet.broker import LimitsError, check_limits


def _task(data: bytes = b'{"a": 1}') -> p.Task:
    sha = hashlib.sha256(data).hexdigest()
    return p.make_task(
        "/h/intent-a.json", data, sha256=sha, attempt=2, mode="structured", timeout=1.5, max_result_bytes=4096
    )


def _result(**over: object) -> p.Result:
    fields: dict[str, object] = {
        "task_id": "0" * 32,
        "sha256": "a" * 64,
        "attempt": 1,
        "delivery": 2,
        "worker": "host:1",
        "ok": True,
        "message": "package written",
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "retryable": False,
        "stdout_tail": "out ü",
        "stderr_tail": "",
        "duration_ms": 12.5,
        "started_at": "2026-01-01T00:00:00.000Z",
        "finished_at": "2026-01-01T00:00:01.000Z",
        "archive_info": p.ArchiveInfo(bytes=3, files=1),
        "archive": b"\x00\n\xff",
    }
    fields.update(over)
    return p.Result(**fields)  # type: ignore[arg-type]


def test_names_follow_the_fleet_name() -> None:
    n = p.FleetNames("blue-1")
    assert (n.task_stream, n.task_subject) == ("CL_blue-1_TASKS", "cl.blue-1.tasks")
    assert (n.result_stream, n.result_subject, n.workers_bucket) == (
        "CL_blue-1_RESULTS",
        "cl.blue-1.results",
        "CL_blue-1_WORKERS",
    )
    assert n.max_deliveries_subject == "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.CL_blue-1_TASKS.workers"
    for bad in ("", "a.b", "a b", "x" * 33, "a>"):
        with pytest.raises(ValueError, match="--fleet"):
            p.FleetNames(bad)


def test_task_id_is_deterministic_and_depends_on_every_part() -> None:
    a = p.task_id("/h/i.json", "a" * 64, 1)
    assert a == p.task_id("/h/i.json", "a" * 64, 1) and len(a) == 32
    others = {
        p.task_id("/h/j.json", "a" * 64, 1),
        p.task_id("/h/i.json", "b" * 64, 1),
        p.task_id("/h/i.json", "a" * 64, 2),
    }
    assert len({a} | others) == 4
    assert a == hashlib.sha256(f"/h/i.json\0{'a' * 64}\0{1}".encode()).hexdigest()[:32]
    assert p.result_msg_id(a, 3) == f"r.{a}.3"


def test_task_round_trip_keeps_the_bytes_exactly() -> None:
    data = b'{"x": "\xc3\xbc"}\n\n\x00trailing'
    task = _task(data)
    body = p.encode_task(task)
    meta = json.loads(body.split(b"\n", 1)[0])
    assert meta["v"] == 1 and meta["size"] == len(data) and meta["name"] == "intent-a.json"
    assert meta["published_at"].endswith("Z")
    back = p.decode_task(body)
    assert back.data == data and back.task_id == task.task_id and back.sha256 == task.sha256
    assert (back.attempt, back.mode, back.timeout, back.max_result_bytes) == (2, "structured", 1.5, 4096)
    assert back.scaling is None
    assert p.decode_task(p.encode_task(p.Task(**{**_fields(task), "scaling": True}))).scaling is True


def test_a_task_encoded_without_a_result_cap_is_refused_until_it_carries_one() -> None:
    data = b'{"x": 1}\n\x00'
    body = p.encode_task(p.Task(**{**_fields(_task(data)), "max_result_bytes": 0}))
    with pytest.raises(p.ProtocolError, match="max_result_bytes"):
        p.decode_task(body)
    back = p.decode_task(p.with_result_cap(body, 8192))
    assert (back.max_result_bytes, back.data, back.task_id) == (8192, data, _task(data).task_id)


def _fields(task: p.Task) -> dict[str, object]:
    return {k: getattr(task, k) for k in p.Task.__slots__}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "version"),
        ({"size": 999}, "size"),
        ({"mode": "sideways"}, "mode"),
        ({"name": "../x"}, "name"),
        ({"name": ".."}, "name"),
        ({"task_id": "XYZ"}, "task_id"),
        ({"sha256": "0" * 63}, "sha256"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": True}, "attempt"),
        ({"timeout": "1s"}, "timeout"),
        ({"scaling": "yes"}, "scaling"),
    ],
)
def test_malformed_task_is_refused_with_its_field(change: dict[str, object], reason: str) -> None:
    head, data = p.encode_task(_task()).split(b"\n", 1)
    meta = {**json.loads(head), **change}
    with pytest.raises(p.ProtocolError, match=reason):
        p.decode_task(json.dumps(meta).encode() + b"\n" + data)


@pytest.mark.parametrize("body", [b"", b"no newline", b"[1]\n", b"\xff\n", b'{"v":1}\n'])
def test_garbage_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode_task(body)
    with pytest.raises(p.ProtocolError):
        p.decode_result(body)


def test_result_round_trip() -> None:
    r = _result()
    assert p.decode_result(p.encode_result(r)) == r
    none = _result(ok=False, exit_code=None, signal=9, archive_info=None, archive=b"", retryable=True)
    assert p.decode_result(p.encode_result(none)) == none


def test_result_archive_fields_must_match_the_bytes() -> None:
    with pytest.raises(p.ProtocolError, match=r"archive\.bytes"):
        p.decode_result(p.encode_result(_result(archive=b"12345")))
    with pytest.raises(p.ProtocolError, match="null"):
        p.decode_result(p.encode_result(_result(archive_info=None)))


def test_long_tails_are_cut_from_the_front() -> None:
    tail = "\x01" * (p.TAIL_WIRE_BYTES * 2) + "END"
    back = p.decode_result(p.encode_result(_result(stdout_tail=tail)))
    assert back.stdout_tail.endswith("END")
    assert len(json.dumps(back.stdout_tail).encode()) <= p.TAIL_WIRE_BYTES


def test_beat_round_trip() -> None:
    beat = p.WorkerBeat("h:1", "h", 1, 2, 1, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.000Z")
    assert p.decode_beat(p.encode_beat(beat)) == beat
    with pytest.raises(p.ProtocolError):
        p.decode_beat(b'{"worker": 1}')


def test_limits_check_says_which_setting_to_raise() -> None:
    lim = check_limits(16 << 20, 10 << 20, 8 << 20)
    assert lim.max_task_msg == (10 << 20) + p.TASK_OVERHEAD
    with pytest.raises(LimitsError, match=r"max_payload.*--max-file-size"):
        check_limits(1 << 20, 10 << 20, 512 << 10)
    with pytest.raises(LimitsError, match="result cap"):
        check_limits(1 << 20, 512 << 10, 1 << 20)
