"""Telemetry: the loop's events become metrics, log lines, health, progress and the summary."""

from __future__ import annotations

import io
import json
from typing import Any

from conductor_loop.health import Health
from conductor_loop.logs import setup_logging
from conductor_loop.metrics import Metrics
from conductor_loop.records import Filing, Outcome, RunSummary, WorkResult
from conductor_loop.telemetry import (
    Figures,
    IntentFiled,
    IntentNotFiled,
    IntentRetried,
    Rescanned,
    StateOpened,
    Swept,
    Telemetry,
    WatchNews,
)


def value(m: Metrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, labels or None)
    return 0.0 if got is None else got


def test_events_become_metrics_logs_progress_and_summary() -> None:
    stream = io.StringIO()
    setup_logging("json", "info", stream)
    seen: list[tuple[int, int]] = []

    def progress(summary: RunSummary, total: int) -> None:
        seen.append((summary.total, total))

    m, h = Metrics(), Health()
    t = Telemetry(m, h, progress)
    t.total_hint = 3
    ok = WorkResult("/h/intent-a.json", Outcome.SUCCESS, "done", 1, 1, duration_ms=5.0)
    bad = WorkResult("/h/intent-b.json", Outcome.FAILED, "porch exited with code 1", 2, 1, timed_out=False)
    slow = WorkResult("/h/intent-c.json", Outcome.RETRY, "timed out", 1, 2, timed_out=True)
    t.emit(IntentFiled(ok, "/h/processed/intent-a.json"))
    t.emit(IntentFiled(bad, "/h/failed/intent-b.json"))
    t.emit(IntentRetried(slow, 2, 0.5))
    t.emit(IntentNotFiled(ok, Filing.CHANGED))
    t.emit(Rescanned("watcher asked for a rescan"))
    t.emit(Swept())
    t.emit(Swept())
    t.emit(WatchNews(events=7))
    t.watcher_changed(False)
    t.emit(Figures(ready=4, delayed=1, inflight=2, workers=2, busy=1, max_workers=3))
    s = t.summary
    assert (s.processed, s.failed, s.retried, s.total) == (1, 1, 1, 2)
    assert seen == [(1, 3), (2, 3)]
    assert value(m, "conductor_intents_total", outcome="success") == 1
    assert value(m, "conductor_intents_total", outcome="failed") == 1
    assert value(m, "conductor_retries_total") == 1 and value(m, "conductor_porch_timeouts_total") == 1
    assert value(m, "conductor_rescans_total") == 1 and value(m, "conductor_events_total") == 7
    assert value(m, "conductor_watcher_up") == 0 and not h.healthz()[0]
    assert value(m, "conductor_sweeps_total") == 2  # sweeps are not rescans
    # the queue as `status` shows it (retries waiting included), set from every turn's figures
    assert value(m, "conductor_queue_depth") == 5 and value(m, "conductor_workers_busy") == 1
    assert value(m, "conductor_workers") == 2
    events: list[dict[str, Any]] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == [
        "intent.success", "intent.failed", "intent.retry", "intent.changed", "loop.rescan", "watcher.lost",
    ]
    live = t.live(Figures(4, 1, 2, 2, 1, 3))
    assert (live["queue"], live["inflight"], live["workers"], live["processed"]) == (5, 2, 2, 1)


def test_the_last_success_is_restored_from_the_state_at_start() -> None:
    m = Metrics()
    t = Telemetry(m, Health())
    t.emit(StateOpened(1_700_000_123.5))
    assert value(m, "conductor_last_success_timestamp_seconds") == 1_700_000_123.5
    t.emit(StateOpened(None))  # a state without a success
    assert value(m, "conductor_last_success_timestamp_seconds") == 0


def test_live_figures_are_published_when_they_change_at_most_every_quarter_second() -> None:
    m = Metrics()
    t = Telemetry(m, Health())
    written: list[dict[str, Any]] = []
    busy, idle = Figures(3, 1, 1, 1, 1, 2), Figures(2, 1, 1, 1, 0, 2)
    assert t.publish_live(busy, written.append)
    assert value(m, "conductor_queue_depth") == 4  # the gauges get the published figures too
    assert not t.publish_live(idle, written.append)  # changed, but too soon
    t._live_at -= 0.3
    assert not t.publish_live(busy, written.append)  # unchanged: waits for the second
    assert t.publish_live(idle, written.append)
    assert [(w["queue"], w["busy"]) for w in written] == [(4, 1), (3, 0)]
