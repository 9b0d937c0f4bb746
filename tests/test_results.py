"""Natural group commit (python/conductor_loop/results.py): the recorder gets, as soon as it is free,
everything that finished while it recorded the previous group. No processes: a recorder stand-in."""

from __future__ import annotations

from typing import Any

from conductor_loop.records import Outcome, RetryPolicy, WorkItem, WorkResult
from conductor_loop.results import FLUSH_MAX, Results
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
    results.maybe_flush()
    assert recorder.groups == [["a"]]  # a free recorder gets a result at once
    for p in ("b", "c", "d"):
        results.add(finished(queue, p))
        results.maybe_flush()  # busy: they collect
    assert recorder.groups == [["a"]] and results.pending
    recorder.pending = 0  # it finished the group
    results.maybe_flush()
    assert recorder.groups == [["a"], ["b", "c", "d"]]


def test_a_group_is_capped_and_the_rest_is_the_next_one() -> None:
    queue, recorder = WorkQueue(RetryPolicy(3)), Recorder()
    results = Results(queue, recorder, feed=None, telemetry=None, status_basis=None)  # type: ignore[arg-type]
    results.add(finished(queue, *(f"i{n}" for n in range(FLUSH_MAX + 5))))
    results.maybe_flush()
    recorder.pending = 0
    results.maybe_flush()
    assert [len(g) for g in recorder.groups] == [FLUSH_MAX, 5]
    results.add(finished(queue, "x", "y"))
    recorder.pending = 1
    results.flush()  # closing: everything, whatever the recorder holds
    assert recorder.groups[-1] == ["x", "y"] and not results.done
