"""The work queue as plain state: order, batch sizing, backoff, requeue-alone (no processes)."""

from __future__ import annotations

from conductor_loop.records import RetryPolicy, WorkItem
from conductor_loop.workqueue import WorkQueue
from fakeclock import FakeClock


def queue(retries: int = 2, priorities: dict[str, int] | None = None) -> tuple[WorkQueue, FakeClock]:
    clock = FakeClock()
    prio = priorities or {}
    return WorkQueue(RetryPolicy(retries), clock=clock, priority=lambda p: prio.get(p, 5)), clock


def test_retry_policy_is_the_one_rule() -> None:
    p = RetryPolicy(2)
    assert [p.may_retry(n) for n in (1, 2, 3)] == [True, True, False]
    assert [p.delay(n) for n in (1, 2, 3, 4, 10)] == [0.5, 1.0, 2.0, 4.0, 30.0]
    assert not RetryPolicy(0).may_retry(1)


def test_priority_first_then_oldest() -> None:
    q, clock = queue(priorities={"/h/hi": 9, "/h/lo": 1})
    for name in ("/h/a", "/h/lo", "/h/hi", "/h/b"):
        q.push(WorkItem(name))
        clock.advance(0.001)
    taken = [q.take_batch(workers=100)[0].path for _ in range(4)]
    assert taken == ["/h/hi", "/h/a", "/h/b", "/h/lo"]
    assert not q.has_ready() and len(q.inflight) == 4


def test_batch_size_is_ready_over_two_per_worker_clamped() -> None:
    q, _ = queue()
    assert q.batch_size(2) == 1
    q.observe([0.001] * 50)  # fast intents: batches are a share of the queue
    for i in range(100):
        q.push(WorkItem(f"/h/{i}"))
    assert q.batch_size(2) == 25
    assert q.batch_size(1) == 32
    assert q.batch_size(100) == 1
    assert len(q.take_batch(2)) == 25 and q.ready == 75


def test_a_lone_intent_travels_alone() -> None:
    q, clock = queue()
    for i in range(10):
        q.push(WorkItem(f"/h/{i}"))
    clock.advance(1)
    q.push(WorkItem("/h/poison"), lone=True)
    batches = []
    while q.has_ready():
        batches.append([i.path for i in q.take_batch(workers=1)])
    assert ["/h/poison"] in batches
    assert all(len(b) == 1 or "/h/poison" not in b for b in batches)


def test_admit_skips_known_and_marks_changed_in_flight() -> None:
    q, _ = queue()
    q.push(WorkItem("/h/queued"))
    q.push(WorkItem("/h/running"))
    q.take_batch(1)  # /h/queued (older) is now in flight
    assert q.admit(["/h/queued", "/h/running", "/h/new"], settled=True) == ["/h/new"]
    assert q.changed == {"/h/queued"}
    q.done("/h/queued")
    assert not q.changed and not q.knows("/h/queued")


def test_held_intents_come_back_only_when_the_watcher_sees_them() -> None:
    q, _ = queue()
    q.hold("/h/a")
    assert q.admit(["/h/a"], settled=False) == []
    assert q.admit(["/h/a"], settled=True) == ["/h/a"]


def test_retry_later_waits_the_backoff() -> None:
    q, clock = queue()
    q.push(WorkItem("/h/a"))
    q.take_batch(1)
    item, delay = q.retry_later("/h/a", attempt=1)
    assert (item.attempt, delay) == (2, 0.5) and q.knows("/h/a") and q.delayed == 1
    q.release_due()
    assert not q.has_ready()
    assert q.next_due() == 0.5
    clock.advance(0.5)
    q.release_due()
    assert q.has_ready() and q.delayed == 0
    q.take_batch(1)
    item, delay = q.retry_later("/h/a", attempt=2)
    assert (item.attempt, delay) == (3, 1.0)


def test_dead_workers_intents_requeued_alone_and_only_a_lone_one_charged() -> None:
    q, _ = queue(retries=1)
    for p in ("/h/a", "/h/b"):
        q.push(WorkItem(p))
    batch = q.take_batch(1) + q.take_batch(1)
    assert q.requeue_lost(batch) == []  # two lost together: nobody charged
    assert [i.attempt for i in batch] == [1, 1]
    lone = q.take_batch(1)
    assert lone == [batch[0]]  # requeued alone
    assert q.requeue_lost(lone) == [] and lone[0].attempt == 2  # alone: charged
    again = q.take_batch(5)
    assert len(again) == 1  # still alone
    while again[0].path != "/h/a":
        again = q.take_batch(5)
    assert q.requeue_lost(again) == again and again[0].attempt == 2  # out of attempts: fails
    assert not q.knows("/h/a")


def test_intents_of_a_worker_that_never_started_on_them_are_not_charged() -> None:
    q, _ = queue(retries=0)
    q.push(WorkItem("/h/a"))
    lost = q.take_batch(1)
    for _ in range(5):  # a worker that cannot boot, again and again
        assert q.requeue_lost(lost, touched=False) == []
        lost = q.take_batch(1)
    assert lost[0].attempt == 1
    assert q.requeue_lost(lost) == lost  # one that died on it: charged, and out of attempts
