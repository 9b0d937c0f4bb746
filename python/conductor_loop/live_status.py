"""``conductor-loop status --watch``: what a running loop publishes, redrawn every interval.

A running loop publishes its queue, in-flight and worker figures and the counts of its run in the state
about once a second (README, ``status``).  This module samples the status report (an injected callable,
``status_report`` of the ``status`` command), turns successive samples of the published counters into
intake and filing rates, and marks the figures STALE when the loop stopped publishing them.  On a terminal
it redraws them with rich until ``q`` or Ctrl-C; without one it prints one plain line per interval.

Data flows one way: report → :class:`Sampler` (with :class:`RateTracker`) → :class:`Snapshot` → a view.
The policy objects take an injected clock and are tested without processes.
"""

from __future__ import annotations

import json
import os
import select
import sys
import termios
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import click

__all__ = ["INTERVAL", "RateTracker", "Rates", "Sampler", "Snapshot", "plain_line", "watch_status"]

#: How often a running loop publishes its figures (its supervisor does it once a second).
PUBLISH_PERIOD = 1.0
#: Figures older than this many publish periods (or redraw intervals, if longer) are STALE.
STALE_PERIODS = 3
#: Seconds of published samples the rates are computed over.
RATE_WINDOW = 10.0
QUIT_KEYS = ("q", "Q")

Report = dict[str, Any]


class _Interval(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """A redraw interval: a duration (``1s``, ``250ms``) of at least 50 ms."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from conductor_loop.units import parse_duration

        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            try:
                seconds = parse_duration(str(value))
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if seconds < 0.05:
            self.fail(f"{value!r} is shorter than 50ms", param, ctx)
        return seconds


#: The click type of ``status --interval``.
INTERVAL = _Interval()


@dataclass(frozen=True, slots=True)
class Rates:
    """Intents per second over the last samples: taken in (filed + backlog growth) and filed."""

    intake: float
    filing: float


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class RateTracker:
    """Rates from successive published figures, timed by the loop's own ``updated_at``.

    Filing rate = growth of ``processed + skipped + failed``; intake rate = filing rate + growth of the
    backlog (``queue + inflight``), i.e. what arrived.  A new ``started_at`` (the loop restarted) or a
    counter going back starts over.
    """

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, float, float]] = deque()  # (updated_at, filed, backlog)
        self._started: float | None = None

    def add(self, live: dict[str, Any]) -> None:
        """Take one published ``live`` dict; repeated samples (same ``updated_at``) are ignored."""
        at = _num(live.get("updated_at"))
        counts = [_num(live.get(k)) for k in ("processed", "skipped", "failed", "queue", "inflight")]
        if at is None or any(c is None for c in counts):
            return
        filed = float(sum(c for c in counts[:3] if c is not None))
        backlog = float(sum(c for c in counts[3:] if c is not None))
        started = _num(live.get("started_at"))
        if self._samples and (started != self._started or filed < self._samples[-1][1]):
            self._samples.clear()
        self._started = started
        if self._samples and at <= self._samples[-1][0]:
            return
        self._samples.append((at, filed, backlog))
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.window:
            self._samples.popleft()

    def rates(self) -> Rates | None:
        """The rates between the oldest and newest sample in the window; ``None`` before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, f0, b0), (t1, f1, b1) = self._samples[0], self._samples[-1]
        dt = t1 - t0
        filing = (f1 - f0) / dt
        return Rates(intake=max(0.0, filing + (b1 - b0) / dt), filing=filing)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One redraw: the report, the newest published figures seen (kept after the loop stopped) and their age."""

    report: Report
    live: dict[str, Any] | None
    rates: Rates | None
    age: float | None
    stale: bool
    at: float


class Sampler:
    """Samples the report every redraw and decides rates and staleness (clock injected)."""

    def __init__(self, report: Callable[[], Report], interval: float, clock: Callable[[], float] = time.time) -> None:
        self._report = report
        self._clock = clock
        self._tracker = RateTracker()
        self._last: dict[str, Any] | None = None
        self.stale_after = STALE_PERIODS * max(interval, PUBLISH_PERIOD)

    def sample(self) -> Snapshot:
        """Read the report once and turn it into a :class:`Snapshot`."""
        rep = self._report()
        live = rep.get("live") if rep.get("running") else None
        if isinstance(live, dict):
            self._last = live
            self._tracker.add(live)
        now = self._clock()
        updated = _num(self._last.get("updated_at")) if self._last else None
        age = max(0.0, now - updated) if updated is not None else None
        stale = not isinstance(live, dict) or age is None or age > self.stale_after
        rates = None if stale else self._tracker.rates()
        return Snapshot(report=rep, live=self._last, rates=rates, age=age, stale=stale, at=now)


# ------------------------------------------------------------------------------ views


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def _age(age: float | None) -> str:
    if age is None:
        return "-"
    return f"{age:.1f}s" if age < 120 else f"{age / 60:.0f}m"


def _loop_text(rep: Report) -> str:
    if not rep.get("running"):
        return "loop not running"
    return f"loop running (pid {rep['pid'] if rep.get('pid') is not None else 'unknown'})"


def plain_line(snap: Snapshot) -> str:
    """One line for a pipe or a log: time, figures, rates, age, and ``STALE`` when they are old."""
    live = snap.live or {}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.at))
    parts = [stamp, _loop_text(snap.report).replace("loop ", "")]
    if snap.live is None:
        parts.append("no live figures")
    else:
        parts += [
            f"queue {live.get('queue', '?')}", f"in-flight {live.get('inflight', '?')}",
            f"busy {live.get('busy', '?')}/{live.get('workers', '?')}",
            f"intake {_rate(snap.rates.intake if snap.rates else None)}",
            f"filing {_rate(snap.rates.filing if snap.rates else None)}",
            f"processed {live.get('processed', '?')}", f"skipped {live.get('skipped', '?')}",
            f"failed {live.get('failed', '?')}", f"age {_age(snap.age)}",
        ]
    if snap.stale:
        parts.append("STALE")
    return "  ".join(parts)


def json_line(snap: Snapshot) -> str:
    """One JSON object a line: the report plus ``rates``, ``age_seconds`` and ``stale``."""
    rates = {"intake": snap.rates.intake, "filing": snap.rates.filing} if snap.rates else None
    doc = {**snap.report, "live": snap.live, "rates": rates, "age_seconds": snap.age, "stale": snap.stale}
    return json.dumps(doc, sort_keys=True)


def render(snap: Snapshot, interval: float) -> Any:
    """The rich view of one snapshot."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rep, live = snap.report, snap.live or {}
    head = Text.assemble(("conductor-loop ", "bold"), (rep["handoff"], "cyan"), "   ", _loop_text(rep))
    age = Text.assemble("figures ", (_age(snap.age), "bold"), " old")
    if snap.stale:
        age.append("  STALE", style="bold white on red")
        if snap.live is None:
            age.append("  (no live figures: the loop is not running or has not published yet)")
    grid = Table.grid(padding=(0, 3))
    for _ in range(4):
        grid.add_column(justify="right")
    grid.add_row("intake", _rate(snap.rates.intake if snap.rates else None),
                 "filing", _rate(snap.rates.filing if snap.rates else None))
    grid.add_row("queue", str(live.get("queue", "-")), "in flight", str(live.get("inflight", "-")))
    grid.add_row("workers busy", f"{live.get('busy', '-')}/{live.get('workers', '-')}",
                 "max workers", str(live.get("max_workers", "-")))
    grid.add_row("processed", str(live.get("processed", "-")), "skipped", str(live.get("skipped", "-")))
    grid.add_row("failed", str(live.get("failed", "-")), "", "")
    parts: list[Any] = [head, age, grid, _failures_table(rep)]
    parts.append(Text(f"every {interval:g}s · q or Ctrl-C to leave", style="dim"))
    return Group(*parts)


def _failures_table(rep: Report) -> Any:
    from rich.table import Table

    failures = rep.get("failures") or []
    table = Table(title=f"last {len(failures)} failures" if failures else "no failures",
                  title_justify="left", expand=False, show_edge=False)
    table.add_column("filed (UTC)", no_wrap=True)
    table.add_column("intent", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for fail in failures:
        when = (fail.get("processed_at") or "?")[:19].replace("T", " ")
        table.add_row(when, str(fail.get("name")), " ".join(str(fail.get("message")).split()))
    return table


# ------------------------------------------------------------------------------ keys and the loop


class KeyReader:
    """Single key presses from a terminal on stdin, in cbreak mode (no echo, no line buffering).

    Ctrl-C still raises ``KeyboardInterrupt`` (cbreak keeps signals).  The terminal's settings are restored
    on exit.  Without a terminal on stdin, :meth:`wait` only sleeps.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        self._fd: int | None = stream.fileno() if stream is not None and stream.isatty() else None
        self._saved: list[Any] | None = None

    def __enter__(self) -> KeyReader:
        if self._fd is not None:
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def quit_within(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True as soon as a quit key is pressed."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self._fd is None:
                time.sleep(left)
                return False
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                return False
            data = os.read(self._fd, 64)
            if not data:  # stdin closed: no more keys
                self._fd = None
                continue
            if any(k in data.decode("utf-8", "replace") for k in QUIT_KEYS):
                return True
        return False


def _live_view(sampler: Sampler, interval: float, keys: KeyReader) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(render(sampler.sample(), interval), console=console, auto_refresh=False,
              redirect_stdout=False, redirect_stderr=False) as live:
        while not keys.quit_within(interval):
            live.update(render(sampler.sample(), interval), refresh=True)


def _line_view(sampler: Sampler, interval: float, keys: KeyReader, as_json: bool) -> None:
    while True:
        snap = sampler.sample()
        sys.stdout.write((json_line(snap) if as_json else plain_line(snap)) + "\n")
        sys.stdout.flush()
        if keys.quit_within(interval):
            return


def watch_status(report: Callable[[], Report], interval: float, as_json: bool = False) -> int:
    """Run ``status --watch`` until ``q`` or Ctrl-C; returns the exit code (0).

    A terminal on stdout gets the rich view (unless ``as_json``); otherwise one line per interval, plain
    or JSON.  Keys are read from stdin when it is a terminal.
    """
    sampler = Sampler(report, interval)
    try:
        with KeyReader(sys.stdin) as keys:
            if sys.stdout.isatty() and not as_json:
                _live_view(sampler, interval, keys)
            else:
                _line_view(sampler, interval, keys, as_json)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `status --watch | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0
