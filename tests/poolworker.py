"""A trivial worker target for the pool tests: echoes items back; ``die`` exits, ``hang`` stalls, ``nap`` naps."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from typing import Any

from conductor_loop.records import Outcome, WorkResult


def echo(slot: int, settings: Any, conn: Connection, heartbeat: Any, stopping: Any) -> None:
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
        if batch and batch[0].path == "quit":
            os._exit(4)  # dies before it starts on anything (like a worker that cannot boot)
        out = []
        for item in batch:
            if stopping.value:
                out.append(WorkResult(item.path, Outcome.RETURNED, "stopping", item.attempt, slot + 1))
                continue
            heartbeat[slot] = time.monotonic()
            if item.path == "die":
                os._exit(3)
            if item.path == "hang":
                time.sleep(3600)
            if item.path == "nap":
                time.sleep(0.5)
            out.append(WorkResult(item.path, Outcome.SUCCESS, f"{settings}", item.attempt, slot + 1))
        heartbeat[slot] = 0.0
        conn.send(out)
