"""A real nats-server with JetStream on 127.0.0.1 for the fleet tests.

``NatsServer(dir).start()`` runs ``nats-server -js -sd DIR -a 127.0.0.1 -p -1 --ports_file_dir DIR`` and is ready
when its ports file appears; ``restart()`` keeps the store and the SAME port so clients reconnect. Without a
nats-server the tests skip locally and fail under CI=true (tests/needs.py); .ci/run installs Debian's.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from needs import need_tool

# Large enough for the default --max-file-size (10 MiB) plus the protocol's overhead.
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024


class NatsServer:
    """One nats-server process; ``url`` once started."""

    def __init__(
        self, base: Path, *, max_payload: int | None = DEFAULT_MAX_PAYLOAD, config: str | None = None
    ) -> None:
        self.exe = need_tool("nats-server", "apt-get install nats-server")
        self.base = base
        self.store = base / "store"
        self.ports_dir = base / "ports"
        self.max_payload = max_payload
        self.config = config  # more configuration text (e.g. operator mode), appended to the config file
        self.port = -1
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "nats-server.log"

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``."""
        assert self.port > 0, "server not started"
        return f"nats://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        argv = [self.exe, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)]
        argv += ["--ports_file_dir", str(self.ports_dir)]
        text = f"max_payload: {self.max_payload}\n" if self.max_payload is not None else ""
        text += self.config or ""
        if text:
            conf = self.base / "nats.conf"
            conf.write_text(text)
            argv += ["-c", str(conf)]
        return argv

    def start(self, timeout: float = 15.0) -> NatsServer:
        """Start the server and wait for its ports file (the sign it is ready)."""
        self.store.mkdir(parents=True, exist_ok=True)
        self.ports_dir.mkdir(parents=True, exist_ok=True)
        for old in glob.glob(str(self.ports_dir / "*.ports")):
            os.unlink(old)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self._argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        pattern = str(self.ports_dir / f"*_{self.proc.pid}.ports")
        while time.monotonic() < deadline:
            found = glob.glob(pattern)
            if found and self._read_port(found[0]):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"nats-server did not become ready; log:\n{self.log.read_text()[-3000:]}")

    def _read_port(self, path: str) -> bool:
        try:
            info = json.loads(Path(path).read_text())
        except ValueError:
            return False  # being written
        client = info.get("client") or info.get("nats") or []
        if not client:
            return False
        self.port = int(str(client[0]).rsplit(":", 1)[1])
        return True

    def stop(self) -> None:
        """SIGTERM and wait (the store is kept)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL and wait (the store is kept)."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same store."""
        self.stop()
        self.start()


def _fresh_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server for one test (max_payload 16 MiB)."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.kill()


#: The fixture, under the two names the fleet tests use (``nats_server``; ``nats`` in the ingest tests).
nats_server = pytest.fixture(_fresh_server, name="nats_server")
nats = pytest.fixture(_fresh_server, name="nats")
