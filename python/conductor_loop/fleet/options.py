"""The fleet options of ``run`` checked (``--executor``, ``--broker``, ``--fleet*``; README, "Options of run").

Kept apart from :mod:`conductor_loop.config`, which calls it, so the fleet's rules live with the fleet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def check_fleet_options(cfg: Any, fail: Callable[[str, str], Exception]) -> None:
    """Raise ``fail(option, problem)`` for a fleet option out of range, or ``--executor fleet`` without a broker."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", cfg.fleet):
        raise fail("fleet", f"{cfg.fleet[:40]!r} must be 1 to 32 of A-Z a-z 0-9 _ -")
    if cfg.fleet_inflight < 1:
        raise fail("fleet_inflight", f"must be at least 1, not {cfg.fleet_inflight}")
    if cfg.fleet_inflight_bytes < 1:
        raise fail("fleet_inflight_bytes", "must be at least 1 byte")
    if not 0.5 <= cfg.fleet_lease <= 3600:
        raise fail("fleet_lease", "must be between 500ms and 1h")
    if cfg.fleet_max_deliver < 1:
        raise fail("fleet_max_deliver", f"must be at least 1, not {cfg.fleet_max_deliver}")
    if cfg.executor != "fleet":
        return
    if not cfg.broker:
        raise fail("broker", "is needed with --executor fleet (e.g. nats://127.0.0.1:4222)")
    if not re.match(r"^(nats|tls)://[^\s/]+$", cfg.broker):
        raise fail("broker", f"{cfg.broker[:80]!r} must be nats://HOST:PORT or tls://HOST:PORT")
