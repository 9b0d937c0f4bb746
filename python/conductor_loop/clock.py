"""Time: the clock the loop's policies read, and the one RFC 3339 formatter.

Policies (intake, queue, autoscaling) take a :class:`Clock` so tests drive them with a fake one;
every timestamp the loop writes (status files, error logs, log lines, the Go state export) is
rendered by :func:`rfc3339`.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    """Monotonic time for intervals, wall time for file modification times."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (comparable with ``st_mtime``)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def time(self) -> float:
        """``time.time()``."""
        return time.time()


SYSTEM_CLOCK = SystemClock()


def rfc3339(ts: float | None = None, digits: int = 3) -> str:
    """RFC 3339 UTC with milliseconds (``2026-01-15T10:15:02.123Z``); ``digits=6`` microseconds, ``0`` none.

    Milliseconds are truncated (never rounded into the next second); microseconds are Python's
    ``datetime`` rounding, as the Go state export always had them.
    """
    if ts is None:
        ts = time.time()
    if digits == 6:
        return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    whole = int(ts)
    if digits == 0:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(whole))
    millis = min(999, int((ts - whole) * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def compact_stamp(ts: float | None = None, digits: int = 3) -> str:
    """The compact UTC stamp of conflict and moved-aside names: ``20260115T101502.123Z``."""
    full = rfc3339(ts, digits)
    return full.replace("-", "").replace(":", "")


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 timestamp (as Go's ``time.Time`` marshals it, nanoseconds allowed) to epoch seconds.

    Raises ``ValueError`` for anything else. The result is the same float as ``datetime.timestamp()``
    gives (whole microseconds divided once), computed from a cache of the date's epoch day: a Go state
    file of a million entries parses them all.
    """
    m = _RFC3339.match(text.strip())
    if m is None:
        raise ValueError(f"invalid RFC 3339 timestamp {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if hour > 23 or minute > 59:
        raise ValueError(f"invalid RFC 3339 timestamp {text!r}: hour or minute out of range")
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6])
    offset = 0
    if not m.group(8):
        sign = -1 if m.group(9) == "-" else 1
        offset = sign * (int(m.group(10)) * 3600 + int(m.group(11)) * 60)
        if abs(offset) >= 86400:  # what datetime.timezone refuses
            raise ValueError(f"invalid RFC 3339 timestamp {text!r}: offset out of range")
    second = min(second, 59)  # a leap second is folded into the one before
    whole = _epoch_day(year, month, day) + hour * 3600 + minute * 60 + second - offset
    return (whole * 1_000_000 + micro) / 1_000_000


@functools.lru_cache(maxsize=4096)
def _epoch_day(year: int, month: int, day: int) -> int:
    """Epoch seconds of a date's midnight UTC (``ValueError`` for a date that does not exist)."""
    return (datetime(year, month, day) - _EPOCH).days * 86400


_EPOCH = datetime(1970, 1, 1)
