"""The feed: swept candidates through intake into the queue, with their dedupe basis (real files and state)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conductor_loop.feed import Feed
from conductor_loop.health import Health
from conductor_loop.intake import Intake
from conductor_loop.layout import Layout
from conductor_loop.metrics import Metrics
from conductor_loop.records import RetryPolicy
from conductor_loop.state import Outcome, StateStore
from conductor_loop.telemetry import Telemetry
from conductor_loop.workqueue import WorkQueue


def test_sweep_offers_settled_intents_once_with_their_dedupe_basis(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "handoff"), ("intent-*",))
    layout.make_dirs()
    old = time.time() - 60
    for name in ("intent-a.json", "intent-b.json", "intent-a.json.tmp", ".intent-c.json", "notes.txt"):
        p = Path(layout.root, name)
        p.write_text("{}")
        os.utime(p, (old, old))
    Path(layout.root, "intent-young.json").write_text("{}")
    queue = WorkQueue(RetryPolicy(2))
    feed = Feed(layout, Intake(0.5), queue, Telemetry(Metrics(), Health()))
    a = os.path.join(layout.root, "intent-a.json")
    with StateStore(layout.root) as state:
        state.record([Outcome(a, "f" * 64, 2, "success", "ok", 0, 1.0, None, layout.planned(a, "success"))])
        state.mark_filed([(a, layout.planned(a, "success"))])
        feed.state = state
        assert feed.sweep() == 2
        assert feed.sweep() == 0  # known: offered once
    assert set(feed.intake.young) == {os.path.join(layout.root, "intent-young.json")}
    batch = queue.take_batch(1) + queue.take_batch(1)
    basis = {os.path.basename(i.path): i.prev_sha256 for i in batch}
    assert basis == {"intent-a.json": "f" * 64, "intent-b.json": None}
    assert feed.offer([a], settled=True) == 0 and queue.changed == {a}  # in flight: marked changed
