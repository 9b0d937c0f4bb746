"""A real ``conductor-loop worker`` process (``python -m conductor_loop worker``) for the fleet tests and the fleet
bench: in its own session, its output in a log file whose JSON lines a test can wait for."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from conductor_loop.fleet.runner import reap_leftovers
from loopproc import wait_for

REPO = Path(__file__).resolve().parent.parent


class Worker:
    """``conductor-loop worker --broker URL --fleet FLEET --worker-id WID --log-format json ARGS…``; its stdout and
    stderr go to ``<log_dir>/worker-<wid>.log``."""

    def __init__(self, log_dir: Path, url: str, wid: str, *args: str, fleet: str,
                 env: dict[str, str] | None = None) -> None:
        self.id = wid
        self.log = log_dir / f"worker-{wid}.log"
        argv = [sys.executable, "-m", "conductor_loop", "worker", "--broker", url, "--fleet", fleet,
                "--worker-id", wid, "--log-format", "json", *args]
        full_env = {**os.environ, "PYTHONPATH": str(REPO / "python"), **(env or {})}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=full_env, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines so far (only event ``name``, when given)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                doc = json.loads(line)
                if name is None or doc.get("event") == name:
                    out.append(doc)
        return out

    def wait_event(self, name: str, n: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until event ``name`` was logged ``n`` times."""
        return wait_for(lambda: (lambda e: e if len(e) >= n else None)(self.events(name)), timeout,
                        what=f"{self.id}: {n} x {name}; log:\n{self.log.read_text()[-3000:]}")

    def metrics_url(self, timeout: float = 20.0) -> str:
        """The ``/metrics`` URL the worker printed."""

        def found() -> str | None:
            m = re.search(r"serving /metrics on (http://\S+)", self.log.read_text())
            return f"{m.group(1)}/metrics" if m else None

        url: str = wait_for(found, timeout, what=f"{self.id}: no metrics address")
        return url

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker process (alone: porch runs in sessions of its own)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; the exit code."""
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL (after SIGCONT, in case it was stopped) and reap; then kill the porches it left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        reap_leftovers(None)
