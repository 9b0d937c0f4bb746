"""Natural group commit (python/conductor_loop/results.py): the recorder gets, once it is free, everything
that finished while it recorded the previous group. No processes: a recorder stand-in."""

from __future__ import annotations

import time
from typing import Any

from conductor_loop.records import Outcome, RetryPolicy, WorkItem, WorkResult
from conductor_loop.results import FLUSH_AFTER, FLUSH_MAX, Results
from conductor_loop.workqueue import WorkQueue


class Recorder:
    """Takes groups; busy until told it finished one."""

    def __init__(self) -> None:
        self.pending = 0
        self.groups: list[list[str]] = []

    def submit(self, results: list[WorkResult], changed: Any = (), last_runs: Any = None) -> None:
        self.pending += 1
        self.groups.append([r.path for r in results])


def finished(queue: WorkQueue, *paths: str) -> list[WorkResult]:
    for p in paths:
        queue.inflight[p] = WorkItem(p)
    return [WorkResult(p, Outcome.SUCCESS, "ok", 1, 1, doc={}) for p in paths]


def test_groups_are_what_finished_while_the_recorder_was_busy() -> None:
    queue, recorder = WorkQueue(RetryPolicy(3)), Recorder()
    results = Results(queue, recorder, feed=None, telemetry=None, status_basis=None)  # type: ignore[arg-type]
    results.add(finished(queue, "a"))
    results.maybe_flush(busy_workers=2)
    assert recorder.groups == []  # young, and more is coming: it waits up to FLUSH_AFTER
    flush_in = results.flush_in()
    assert flush_in is not None and flush_in <= FLUSH_AFTER
    results.maybe_flush(busy_workers=0)
    assert recorder.groups == [["a"]]  # nothing else runs: at once
    for p in ("b", "c", "d"):
        results.add(finished(queue, p))
        results.maybe_flush(busy_workers=0)  # the recorder is busy: they collect
    assert recorder.groups == [["a"]] and results.pending and results.flush_in() is None
    recorder.pending = 0  # it finished the group
    results.maybe_flush(busy_workers=0)
    assert recorder.groups == [["a"], ["b", "c", "d"]]


def test_a_free_recorder_gets_a_group_once_it_is_old_enough() -> None:
    queue, recorder = WorkQueue(RetryPolicy(3)), Recorder()
    results = Results(queue, recorder, feed=None, telemetry=None, status_basis=None)  # type: ignore[arg-type]
    results.add(finished(queue, "e"))
    results.maybe_flush(busy_workers=1)
    assert recorder.groups == []
    time.sleep(FLUSH_AFTER)
    results.maybe_flush(busy_workers=1)
    assert recorder.groups == [["e"]]


def test_a_group_is_capped_and_the_rest_is_the_next_one() -> None:
    queue, recorder = WorkQueue(RetryPolicy(3)), Recorder()
    results = Results(queue, recorder, feed=None, telemetry=None, status_basis=None)  # type: ignore[arg-type]
    results.add(finished(queue, *(f"i{n}" for n in range(FLUSH_MAX + 5))))
    results.maybe_flush(busy_workers=0)
    recorder.pending = 0
    results.maybe_flush(busy_workers=0)
    assert [len(g) for g in recorder.groups] == [FLUSH_MAX, 5]
    results.add(finished(queue, "x", "y"))
    recorder.pending = 1
    results.flush()  # closing: everything, whatever the recorder holds
    assert recorder.groups[-1] == ["x", "y"] and not results.done
