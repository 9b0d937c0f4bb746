"""The fleet wire protocol: names on the broker, the ``Task`` and ``Result`` records, their encoding, task ids.

Both records travel as one line of compact JSON metadata, ``\\n``, then raw bytes (the intent's bytes exactly
as hashed, or the result archive). Decoding checks every field and raises :class:`ProtocolError` with a
reason; nothing decoded here is trusted further than that (docs/operations.md, "Fleet mode").
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from conductor_loop.clock import rfc3339

VERSION = 1
MSG_ID_HEADER = "Nats-Msg-Id"
DEFAULT_FLEET = "default"
TASK_CONSUMER = "workers"
RESULT_CONSUMER = "ingest"
MODES = ("direct", "structured")
ARCHIVE_FORMAT = "tar.gz"

TASK_OVERHEAD = 4096
"""Bytes a task needs on top of the intent's own (its metadata line and headers)."""
TAIL_WIRE_BYTES = 64 * 1024
"""At most this many bytes of JSON for each of a result's stdout and stderr tails."""
RESULT_OVERHEAD = 2 * TAIL_WIRE_BYTES + 16 * 1024
"""Bytes a result needs on top of its archive (its metadata line with both tails, and headers)."""

_FLEET_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TASK_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ProtocolError(ValueError):
    """A message that is not a well-formed task or result; the text says which field and why."""


def check_fleet_name(name: str) -> str:
    """Return ``name`` if it is a valid fleet name (``[A-Za-z0-9_-]{1,32}``), else raise ``ValueError``."""
    if not _FLEET_NAME.fullmatch(name):
        raise ValueError(f"--fleet {name!r}: must be 1 to 32 of A-Z a-z 0-9 _ -")
    return name


@dataclass(frozen=True, slots=True)
class FleetNames:
    """Every name a fleet uses on the broker, derived from the fleet name alone."""

    fleet: str = DEFAULT_FLEET

    def __post_init__(self) -> None:
        check_fleet_name(self.fleet)

    @property
    def task_stream(self) -> str:
        """The work-queue stream of tasks."""
        return f"CL_{self.fleet}_TASKS"

    @property
    def task_subject(self) -> str:
        """The subject tasks are published to."""
        return f"cl.{self.fleet}.tasks"

    @property
    def result_stream(self) -> str:
        """The work-queue stream of results."""
        return f"CL_{self.fleet}_RESULTS"

    @property
    def result_subject(self) -> str:
        """The subject results are published to."""
        return f"cl.{self.fleet}.results"

    @property
    def workers_bucket(self) -> str:
        """The KV bucket of worker heartbeats."""
        return f"CL_{self.fleet}_WORKERS"

    @property
    def max_deliveries_subject(self) -> str:
        """The advisory the server sends when a task reached max-deliver."""
        return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.task_stream}.{TASK_CONSUMER}"


def task_id(path: str, sha256: str, attempt: int) -> str:
    """The deterministic task id (32 hex digits): a republish of the same attempt is a broker duplicate."""
    return hashlib.sha256(f"{path}\0{sha256}\0{attempt}".encode("utf-8", "surrogateescape")).hexdigest()[:32]


def result_msg_id(tid: str, delivery: int) -> str:
    """The ``Nats-Msg-Id`` of the result of delivery ``delivery`` of task ``tid``."""
    return f"r.{tid}.{delivery}"


@dataclass(frozen=True, slots=True)
class Task:
    """One intent to run, as the ingest publishes it. ``data`` are the intent's bytes exactly as hashed."""

    task_id: str
    name: str
    sha256: str
    attempt: int
    mode: str
    timeout: float
    max_result_bytes: int
    data: bytes
    published_at: str = ""
    scaling: bool | None = None
    """The ingest's verdict under its ``--intent-schema`` (``Intent.scaling``); ``None``: the worker reads
    it from the intent's type."""

    @property
    def size(self) -> int:
        """The intent's size in bytes."""
        return len(self.data)


def make_task(
    path: str,
    data: bytes,
    *,
    sha256: str,
    attempt: int,
    mode: str,
    timeout: float,
    max_result_bytes: int,
    scaling: bool | None = None,
) -> Task:
    """The task for attempt ``attempt`` of the intent at ``path`` (its id from :func:`task_id`)."""
    name = path.rsplit("/", 1)[-1]
    tid = task_id(path, sha256, attempt)
    return Task(tid, name, sha256, attempt, mode, timeout, max_result_bytes, data, scaling=scaling)


def encode_task(task: Task) -> bytes:
    """The message body of ``task`` (``published_at`` is stamped now when empty)."""
    meta = {
        "v": VERSION,
        "task_id": task.task_id,
        "name": task.name,
        "sha256": task.sha256,
        "size": task.size,
        "attempt": task.attempt,
        "mode": task.mode,
        "timeout": task.timeout,
        "max_result_bytes": task.max_result_bytes,
        "published_at": task.published_at or rfc3339(),
        "scaling": task.scaling,
    }
    return _join(meta, task.data)


def with_result_cap(body: bytes, max_result_bytes: int) -> bytes:
    """The task body ``body`` carrying ``max_result_bytes`` (a task encoded before the broker's cap was known)."""
    meta, data = _split(body)
    meta["max_result_bytes"] = max_result_bytes
    return _join(meta, data)


def decode_task(body: bytes) -> Task:
    """The task in a message body; raises :class:`ProtocolError` when any field is missing or wrong.

    The intent's bytes are not checked against the sha256 here: that is the worker's first step.
    """
    meta, data = _split(body)
    name = _field(meta, "name", str)
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ProtocolError(f"task field 'name' is not a plain file name: {name[:80]!r}")
    mode = _field(meta, "mode", str)
    if mode not in MODES:
        raise ProtocolError(f"task field 'mode' must be one of {', '.join(MODES)}, not {mode[:20]!r}")
    if _field(meta, "size", int) != len(data):
        raise ProtocolError(f"task field 'size' is {meta['size']} but {len(data)} bytes follow")
    return Task(
        task_id=_match(meta, "task_id", _TASK_ID),
        name=name,
        sha256=_match(meta, "sha256", _SHA256),
        attempt=_positive(meta, "attempt"),
        mode=mode,
        timeout=float(_field(meta, "timeout", (int, float))),
        max_result_bytes=_positive(meta, "max_result_bytes"),
        data=data,
        published_at=_field(meta, "published_at", str),
        scaling=None if meta.get("scaling") is None else bool(_field(meta, "scaling", bool)),
    )


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """What a result says about its archive."""

    bytes: int
    files: int
    format: str = ARCHIVE_FORMAT


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one delivery of a task, as a worker publishes it; fields mirror ``execapi.ExecResult``.

    ``archive`` is the package (``tar.gz`` of the out dir) or empty; ``archive_info`` describes it, or is
    ``None`` when there is none.
    """

    task_id: str
    sha256: str
    attempt: int
    delivery: int
    worker: str
    ok: bool
    message: str
    exit_code: int | None
    signal: int | None
    timed_out: bool
    retryable: bool
    stdout_tail: str
    stderr_tail: str
    duration_ms: float
    started_at: str
    finished_at: str
    archive_info: ArchiveInfo | None = None
    archive: bytes = b""


def encode_result(result: Result) -> bytes:
    """The message body of ``result``; each output tail is cut (keeping its end) to fit ``TAIL_WIRE_BYTES``."""
    info = result.archive_info
    meta = {
        "v": VERSION,
        "task_id": result.task_id,
        "sha256": result.sha256,
        "attempt": result.attempt,
        "delivery": result.delivery,
        "worker": result.worker,
        "ok": result.ok,
        "message": result.message,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "timed_out": result.timed_out,
        "retryable": result.retryable,
        "stdout_tail": fit_tail(result.stdout_tail),
        "stderr_tail": fit_tail(result.stderr_tail),
        "duration_ms": result.duration_ms,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "archive": None if info is None else {"format": info.format, "bytes": info.bytes, "files": info.files},
    }
    return _join(meta, result.archive)


def decode_result(body: bytes) -> Result:
    """The result in a message body; raises :class:`ProtocolError` when any field is missing or wrong.

    The archive itself is not opened here: ``archive.unpack_checked`` does that.
    """
    meta, data = _split(body)
    info = _archive_info(meta.get("archive"), len(data))
    return Result(
        task_id=_match(meta, "task_id", _TASK_ID),
        sha256=_match(meta, "sha256", _SHA256),
        attempt=_positive(meta, "attempt"),
        delivery=_positive(meta, "delivery"),
        worker=_field(meta, "worker", str),
        ok=_field(meta, "ok", bool),
        message=_field(meta, "message", str),
        exit_code=_optional_int(meta, "exit_code"),
        signal=_optional_int(meta, "signal"),
        timed_out=_field(meta, "timed_out", bool),
        retryable=_field(meta, "retryable", bool),
        stdout_tail=_field(meta, "stdout_tail", str),
        stderr_tail=_field(meta, "stderr_tail", str),
        duration_ms=float(_field(meta, "duration_ms", (int, float))),
        started_at=_field(meta, "started_at", str),
        finished_at=_field(meta, "finished_at", str),
        archive_info=info,
        archive=data,
    )


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """A worker's heartbeat, the value of its key in the workers KV bucket (``fleet status`` reads them)."""

    worker: str
    host: str
    pid: int
    slots: int
    busy: int
    started_at: str
    heartbeat_at: str


def encode_beat(beat: WorkerBeat) -> bytes:
    """The KV value of ``beat`` (compact JSON)."""
    return _dumps({k: getattr(beat, k) for k in WorkerBeat.__slots__})


def decode_beat(value: bytes) -> WorkerBeat:
    """The heartbeat in a KV value; raises :class:`ProtocolError` when it is not one."""
    try:
        meta = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"worker heartbeat is not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ProtocolError("worker heartbeat is not a JSON object")
    strings = {k: _field(meta, k, str) for k in ("worker", "host", "started_at", "heartbeat_at")}
    ints = {k: _field(meta, k, int) for k in ("pid", "slots", "busy")}
    return WorkerBeat(**strings, **ints)


def fit_tail(text: str, limit: int = TAIL_WIRE_BYTES) -> str:
    """``text``, cut from the front until its JSON encoding takes at most ``limit`` bytes."""
    while text and len(_dumps(text)) > limit:
        text = text[max(1, len(text) // 8) :]
    return text


def _archive_info(raw: Any, n: int) -> ArchiveInfo | None:
    if raw is None:
        if n:
            raise ProtocolError(f"result has {n} archive bytes but field 'archive' is null")
        return None
    if not isinstance(raw, dict):
        raise ProtocolError("result field 'archive' must be an object or null")
    if raw.get("format") != ARCHIVE_FORMAT:
        raise ProtocolError(f"result archive format must be {ARCHIVE_FORMAT!r}")
    if _field(raw, "bytes", int) != n:
        raise ProtocolError(f"result field 'archive.bytes' is {raw['bytes']} but {n} bytes follow")
    files = _field(raw, "files", int)
    if files < 0:
        raise ProtocolError("result field 'archive.files' is negative")
    return ArchiveInfo(bytes=n, files=files)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def _join(meta: dict[str, Any], data: bytes) -> bytes:
    return _dumps(meta) + b"\n" + data


def _split(body: bytes) -> tuple[dict[str, Any], bytes]:
    head, sep, data = body.partition(b"\n")
    if not sep:
        raise ProtocolError("message has no metadata line (no newline)")
    try:
        meta = json.loads(head)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"metadata line is not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ProtocolError("metadata line is not a JSON object")
    if meta.get("v") != VERSION:
        raise ProtocolError(f"protocol version {meta.get('v')!r} is not {VERSION}")
    return meta, data


def _field(meta: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = meta.get(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    is_bool = isinstance(value, bool)
    if value is None or not isinstance(value, kinds) or (is_bool and bool not in kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ProtocolError(f"field {key!r} must be {names}, not {type(value).__name__}")
    return value


def _positive(meta: dict[str, Any], key: str) -> int:
    value: int = _field(meta, key, int)
    if value < 1:
        raise ProtocolError(f"field {key!r} must be at least 1, not {value}")
    return value


def _optional_int(meta: dict[str, Any], key: str) -> int | None:
    return None if meta.get(key) is None else int(_field(meta, key, int))


def _match(meta: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value: str = _field(meta, key, str)
    if not pattern.fullmatch(value):
        raise ProtocolError(f"field {key!r} is malformed: {value[:80]!r}")
    return value
