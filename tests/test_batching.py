"""The batch policy of the work queue, without processes (python/conductor_loop/workqueue.py)."""

from __future__ import annotations

import pytest

from conductor_loop.workqueue import BatchPolicy


def test_one_intent_until_the_first_result() -> None:
    p = BatchPolicy()
    assert p.size(1000, 2) == 1
    assert p.per_worker() == 1


def test_fast_intents_are_batched_up_to_the_budget_and_the_share() -> None:
    p = BatchPolicy(budget_s=0.05, max_batch=32)
    p.observe([0.001] * 50)
    assert p.per_worker() == 2
    assert p.size(1000, 2) == 32  # capped by max_batch
    assert p.size(40, 2) == 10  # a share of the queue: 40 / (2 x 2)
    assert p.size(1, 4) == 1
    p2 = BatchPolicy(budget_s=0.05)
    p2.observe([0.01] * 50)
    assert p2.size(1000, 1) == 5  # 50 ms of 10 ms intents


def test_slow_intents_go_one_at_a_time_one_per_worker() -> None:
    p = BatchPolicy(budget_s=0.05)
    p.observe([0.2] * 5)
    assert p.size(1000, 1) == 1
    assert p.per_worker() == 1


def test_average_follows_a_change_of_speed() -> None:
    p = BatchPolicy(budget_s=0.05)
    p.observe([0.001] * 20)
    assert p.per_worker() == 2
    p.observe([1.0] * 5)
    assert p.per_worker() == 1 and p.size(1000, 1) == 1
    p.observe([0.001] * 40)
    assert p.per_worker() == 2 and p.size(1000, 1) > 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        BatchPolicy(budget_s=0)
    with pytest.raises(ValueError):
        BatchPolicy(max_batch=0)
