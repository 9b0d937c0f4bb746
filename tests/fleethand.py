"""A worker by hand, for the fleet tests: pull a task, publish whatever result the test wants (real NATS).

Synchronous: every call runs the client's own event loop until it is done. Results are built with the
real protocol (``encode_result``), so a test controls every field, the archive included (hostile ones).
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
from typing import Any

import nats

from conductor_loop.fleet.protocol import (
    MSG_ID_HEADER,
    TASK_CONSUMER,
    ArchiveInfo,
    FleetNames,
    Result,
    Task,
    decode_task,
    encode_result,
    result_msg_id,
)


class HandWorker:
    """One connection; tasks are pulled from the ``workers`` consumer like a real worker does."""

    def __init__(self, url: str, fleet: str = "default") -> None:
        self.names = FleetNames(fleet)
        self.loop = asyncio.new_event_loop()
        self.nc: Any = self.run(nats.connect(url, connect_timeout=2))
        self.js: Any = self.nc.jetstream()
        self.sub: Any = None

    def run(self, coro: Any) -> Any:
        """Run one coroutine on this worker's loop."""
        return self.loop.run_until_complete(coro)

    def take(self, timeout: float = 20.0) -> tuple[Task, Any]:
        """The next task and its message (not acked); waits for the ingest to create the consumer."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.sub is None:
                    self.sub = self.run(self.js.pull_subscribe_bind(TASK_CONSUMER, self.names.task_stream))
                msgs = self.run(self.sub.fetch(1, timeout=1.0))
                return decode_task(msgs[0].data), msgs[0]
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.sub = None if self.sub is None else self.sub

    def answer(self, task: Task, msg: Any, *, ok: bool = True, archive: bytes = b"", files: int = 0,
               message: str = "", retryable: bool = False, ack: bool = True, delivery: int | None = None) -> bytes:
        """Publish a result for ``task`` (then ack the task, as a worker does); returns the result body."""
        n = delivery if delivery is not None else int(msg.metadata.num_delivered)
        body = encode_result(Result(
            task_id=task.task_id, sha256=task.sha256, attempt=task.attempt, delivery=n, worker="hand:1", ok=ok,
            message=message or ("porch exited 0" if ok else "porch failed"), exit_code=0 if ok else 3, signal=None,
            timed_out=False, retryable=retryable, stdout_tail="", stderr_tail="", duration_ms=1.0,
            started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:00:01Z",
            archive_info=ArchiveInfo(len(archive), files) if archive else None, archive=archive))
        self.publish_result(body, result_msg_id(task.task_id, n))
        if ack:
            self.run(msg.ack_sync())
        return body

    def publish_result(self, body: bytes, msg_id: str) -> None:
        """Publish a raw result body."""
        self.run(self.js.publish(self.names.result_subject, body, headers={MSG_ID_HEADER: msg_id}))

    def messages(self, stream: str) -> int:
        """Messages stored in ``stream`` now."""
        return int(self.run(self.js.stream_info(stream)).state.messages)

    def close(self) -> None:
        """Close the connection and the loop."""
        try:
            self.run(self.nc.close())
        finally:
            self.loop.close()


def tar_gz(members: list[tuple[str, str, bytes]]) -> bytes:
    """A tar.gz of ``(name, kind, data)`` members: kind ``file``, ``dir``, ``symlink`` (data: the target)
    or ``hardlink``; names are written as given (``..``, absolute paths), which is the point."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = data.decode()
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
