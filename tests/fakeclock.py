"""A clock tests move by hand (for the policies that take an injected clock)."""

from __future__ import annotations


class FakeClock:
    """Monotonic and wall time that only move when told."""

    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.mono = 1000.0
        self.wall = wall

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds
