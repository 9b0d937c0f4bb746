"""``conductor-loop status --watch``: rates and staleness (clock injected), and the real view through a pty."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from conductor_loop.cli.status import status_report
from conductor_loop.live_status import RateTracker, Sampler, json_line, plain_line
from conftest import write_intent
from loopproc import LoopProcess, wait_for

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def live(at: float, processed: int = 0, failed: int = 0, queue: int = 0, inflight: int = 0,
         started: float = 1000.0) -> dict[str, Any]:
    return {"updated_at": at, "started_at": started, "processed": processed, "skipped": 0, "failed": failed,
            "queue": queue, "inflight": inflight, "workers": 4, "busy": inflight, "max_workers": 8, "pid": 42}


# --- policy: rates and staleness, no processes ------------------------------------------------------


def test_rates_from_successive_published_samples() -> None:
    t = RateTracker(window=10.0)
    t.add(live(100.0, processed=10, queue=5))
    assert t.rates() is None  # one sample is no rate
    t.add(live(100.0, processed=10, queue=5))  # the same publication again: ignored
    assert t.rates() is None
    t.add(live(102.0, processed=30, failed=4, queue=9, inflight=2))
    r = t.rates()
    assert r is not None
    assert r.filing == pytest.approx(12.0)  # (34 - 10) / 2 s
    assert r.intake == pytest.approx(15.0)  # filed 24 + backlog grew 6, in 2 s


def test_rates_window_and_restart() -> None:
    t = RateTracker(window=10.0)
    for i in range(30):
        t.add(live(100.0 + i, processed=i * 2))
    r = t.rates()
    assert r is not None and r.filing == pytest.approx(2.0)
    t.add(live(200.0, processed=1, started=5000.0))  # the loop restarted: counters start over
    assert t.rates() is None
    t.add(live(201.0, processed=4, started=5000.0))
    r = t.rates()
    assert r is not None and r.filing == pytest.approx(3.0)


def test_sampler_marks_figures_stale() -> None:
    now = [1000.0]
    rep: dict[str, Any] = {"handoff": "/h", "running": True, "pid": 42, "failures": []}
    sampler = Sampler(lambda: rep, interval=0.2, clock=lambda: now[0])
    assert sampler.stale_after == pytest.approx(3.0)  # 3 publish periods: the loop publishes once a second
    rep["live"] = live(999.5, processed=1)
    s = sampler.sample()
    assert not s.stale and s.age == pytest.approx(0.5) and s.rates is None
    now[0] = 1001.0
    rep["live"] = live(1000.5, processed=5)
    s = sampler.sample()
    assert not s.stale and s.rates is not None and s.rates.filing == pytest.approx(4.0)
    assert "STALE" not in plain_line(s) and "filing 4.0/s" in plain_line(s) and "busy 0/4" in plain_line(s)
    now[0] = 1004.0  # nothing newer published for 3.5 s
    s = sampler.sample()
    assert s.stale and s.rates is None and plain_line(s).endswith("STALE")
    rep.update(running=False, live=None)  # the loop stopped: the last figures stay, marked STALE
    now[0] = 1010.0
    s = sampler.sample()
    assert s.stale and s.live is not None and s.age == pytest.approx(9.5)
    assert "not running" in plain_line(s) and "processed 5" in plain_line(s)


def test_sampler_without_any_live_figures() -> None:
    sampler = Sampler(lambda: {"handoff": "/h", "running": False, "pid": None, "live": None}, interval=1.0,
                      clock=lambda: 5.0)
    s = sampler.sample()
    assert s.stale and s.live is None and s.age is None
    assert "no live figures" in plain_line(s) and plain_line(s).endswith("STALE")
    doc = json.loads(json_line(s))
    assert doc["stale"] is True and doc["rates"] is None and doc["age_seconds"] is None and doc["handoff"] == "/h"


def test_bad_interval_is_a_usage_error(handoff: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "conductor_loop", "status", "--watch", "--interval", "soon",
                           "--handoff", str(handoff)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--interval" in proc.stderr


# --- the real thing -----------------------------------------------------------------------------------


class PtyWatch:
    """``status --watch`` in a pseudo-terminal that is its controlling terminal; the screen as plain text."""

    def __init__(self, handoff: Path, *args: str) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        self.tty_before = termios.tcgetattr(self.slave)
        self.raw = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conductor_loop", "status", "--watch", "--handoff", str(handoff), *args],
            stdin=self.slave, stdout=self.slave, stderr=self.slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={**os.environ, "TERM": "xterm", "COLUMNS": "140", "LINES": "40"},
        )

    def pump(self) -> str:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.raw += chunk
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace")

    def wait_screen(self, pred: Any, what: str, timeout: float = 60) -> str:
        mark = len(self.raw)

        def newer() -> str | None:
            self.pump()
            text = ANSI.sub(b"", self.raw[mark:]).decode("utf-8", "replace")
            return text if pred(text) else None
        return wait_for(newer, timeout, what=what)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)


def _published(handoff: Path) -> bool:
    rep = status_report(str(handoff))
    return bool(rep["running"] and rep["live"] and rep["live"]["processed"] >= 2 and rep["live"]["failed"] >= 1)


@pytest.mark.timeout(180)
def test_watch_in_a_terminal_shows_figures_then_stale_and_q_leaves(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--workers", "2") as loop:
        loop.ready()
        write_intent(handoff, "intent-a.json", target="a")
        write_intent(handoff, "intent-b.json", target="b")
        write_intent(handoff, "intent-broken.json", replicas=0)  # invalid: filed as failed with a reason
        wait_for(lambda: _published(handoff), timeout=60, what="the loop publishing 2 processed, 1 failed")
        view = PtyWatch(handoff, "--interval", "0.2s")
        try:
            screen = view.wait_screen(
                lambda s: all(w in s for w in ("intake", "filing", "queue", "in flight", "workers busy",
                                               "processed", "intent-broken.json", "q or Ctrl-C"))
                and re.search(r"workers busy\s+\d+/2", s) and re.search(r"processed\s+2", s)
                and re.search(r"filing\s+\d+\.\d/s", s),  # a rate needs two publications
                "the live view with the figures")
            assert "loop running (pid " in screen and "STALE" not in screen.split("figures")[-1].split("\n")[0]
            assert re.search(r"replicas", screen), screen[-2000:]  # the failure's reason
            for i in range(5):  # more intents while watching: the rates move off zero
                write_intent(handoff, f"intent-more-{i}.json", target=f"m{i}")
            view.wait_screen(lambda s: re.search(r"processed\s+7", s)
                             and any(float(r) > 0 for r in re.findall(r"filing\s+(\d+\.\d)/s", s))
                             and any(float(r) > 0 for r in re.findall(r"intake\s+(\d+\.\d)/s", s)),
                             "non-zero intake and filing rates")
            loop.signal(signal.SIGTERM)
            assert loop.proc.wait(30) == 0
            view.wait_screen(lambda s: "STALE" in s and "loop not running" in s, "STALE after the loop stopped")
            os.write(view.master, b"q")
            assert view.proc.wait(30) == 0
            after = termios.tcgetattr(view.slave)
            assert after[3] & termios.ECHO and after[3] & termios.ICANON  # the terminal is restored
            assert after == view.tty_before
        finally:
            view.close()


@pytest.mark.timeout(120)
def test_watch_in_a_terminal_leaves_on_ctrl_c(handoff: Path) -> None:
    view = PtyWatch(handoff, "--interval", "0.2s")
    try:
        view.wait_screen(lambda s: "STALE" in s and "no live figures" in s, "STALE without a loop")
        os.write(view.master, b"\x03")  # Ctrl-C through the terminal's line discipline: SIGINT
        assert view.proc.wait(30) == 0
        assert termios.tcgetattr(view.slave) == view.tty_before
    finally:
        view.close()


@pytest.mark.timeout(180)
def test_watch_without_a_terminal_prints_one_line_per_interval(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--workers", "1") as loop:
        loop.ready()
        write_intent(handoff, "intent-a.json")
        wait_for(lambda: (r := status_report(str(handoff)))["live"] and r["live"]["processed"] == 1,
                 timeout=60, what="the loop publishing 1 processed")
        proc = subprocess.Popen(
            [sys.executable, "-m", "conductor_loop", "status", "--watch", "--interval", "0.2s",
             "--handoff", str(handoff)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline().decode() for _ in range(3)]
            for line in lines:
                assert line.endswith("\n") and "\x1b" not in line, line
                assert re.search(r"running \(pid \d+\)  queue 0  in-flight 0  busy 0/1  intake ", line), line
                assert "processed 1  skipped 0  failed 0" in line and "STALE" not in line
            loop.signal(signal.SIGTERM)
            assert loop.proc.wait(30) == 0
            deadline = time.monotonic() + 30
            while "STALE" not in (line := proc.stdout.readline().decode()):
                assert time.monotonic() < deadline, line
            assert "not running" in line and "processed 1" in line
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
