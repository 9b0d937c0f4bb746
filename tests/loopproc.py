"""A running `conductor-loop run` (watch mode) as a real subprocess, for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``pred`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")
        time.sleep(interval)


class LoopProcess:
    """`conductor-loop run` with JSON logs captured to a file and an HTTP port for probes."""

    def __init__(self, handoff: Path, out: Path, *args: str, env: dict[str, str] | None = None,
                 metrics: bool = True) -> None:
        self.handoff, self.out = handoff, out
        self.log_path = handoff.parent / f"loop-{time.monotonic_ns()}.log"
        self.port = free_port() if metrics else None
        argv = [sys.executable, "-m", "conductor_loop", "run", "--handoff", str(handoff), "--out", str(out),
                "--log-format", "json", *args]
        if self.port:
            argv += ["--metrics-addr", f"127.0.0.1:{self.port}"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})}, start_new_session=True)

    # -- observation -----------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_event(self, name: str, timeout: float = 30.0, count: int = 1, **match: Any) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]] | None:
            hits = [e for e in self.events() if e.get("event") == name
                    and all(e.get(k) == v for k, v in match.items())]
            return hits if len(hits) >= count else None
        return wait_for(found, timeout, what=f"event {name} {match} x{count}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            if self.proc.poll() is not None:
                raise AssertionError(f"loop exited with {self.proc.returncode}: "
                                     f"{self.log_path.read_text()[-3000:]}") from e
            return 0, str(e)

    def metric(self, name: str) -> float | None:
        from prometheus_client.parser import text_string_to_metric_families

        _, text = self.get("/metrics")
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == name and not s.labels:
                    return float(s.value)
        return None

    def ready(self, timeout: float = 30.0) -> None:
        wait_for(lambda: self.get("/readyz")[0] == 200, timeout, what="/readyz 200")

    # -- control -------------------------------------------------------------------------
    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> LoopProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
