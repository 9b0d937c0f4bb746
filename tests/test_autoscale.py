"""The worker-count policy with a deterministic clock and load."""

from __future__ import annotations

from conductor_loop.autoscale import Autoscaler, LoadSample


def sample(t: float, queue: int, workers: int, busy: int | None = None, idle: float = 0.8, rate: float = 10.0
           ) -> LoadSample:
    return LoadSample(now=t, queue=queue, workers=workers, busy=workers if busy is None else busy, cpu_idle=idle,
                      rate_per_worker=rate)


def test_grows_one_at_a_time_when_queue_outruns_workers_and_cpu_is_free() -> None:
    a = Autoscaler(1, 4)
    w = 1
    history = []
    for t in range(10):
        w = a.decide(sample(float(t), queue=500, workers=w))
        history.append(w)
    assert history[:4] == [2, 3, 4, 4]  # additive increase, capped at the ceiling
    assert max(history) == 4


def test_no_growth_without_spare_cpu_or_when_workers_keep_up() -> None:
    a = Autoscaler(1, 4)
    assert a.decide(sample(0.0, queue=500, workers=1, idle=0.05)) == 1  # host saturated
    assert a.decide(sample(1.0, queue=5, workers=1, rate=10.0)) == 1  # drains within a second


def test_grow_cooldown() -> None:
    a = Autoscaler(1, 8, grow_cooldown=1.0)
    assert a.decide(sample(0.0, queue=500, workers=1)) == 2
    assert a.decide(sample(0.5, queue=500, workers=2)) == 2
    assert a.decide(sample(1.0, queue=500, workers=2)) == 3


def test_shrinks_by_half_after_30s_idle_never_below_floor() -> None:
    a = Autoscaler(2, 8)
    w = 8
    assert a.decide(sample(0.0, queue=0, workers=w, busy=0)) == 8
    assert a.decide(sample(29.0, queue=0, workers=w, busy=0)) == 8
    w = a.decide(sample(30.0, queue=0, workers=w, busy=0))
    assert w == 4  # multiplicative decrease
    assert a.decide(sample(45.0, queue=0, workers=w, busy=0)) == 4  # idle timer restarted: hysteresis
    w = a.decide(sample(60.0, queue=0, workers=w, busy=0))
    assert w == 2
    assert a.decide(sample(200.0, queue=0, workers=w, busy=0)) == 2  # floor


def test_activity_resets_the_idle_timer() -> None:
    a = Autoscaler(1, 4)
    a.decide(sample(0.0, queue=0, workers=4, busy=0))
    a.decide(sample(20.0, queue=1, workers=4, busy=1, rate=100.0))
    assert a.decide(sample(40.0, queue=0, workers=4, busy=0)) == 4
    assert a.decide(sample(70.0, queue=0, workers=4, busy=0)) == 2


def test_no_oscillation_under_steady_load() -> None:
    a = Autoscaler(1, 4)
    w = 1
    seen = []
    for t in range(120):
        # a load that 2 workers drain within a second
        w = a.decide(sample(float(t), queue=15, workers=w, rate=10.0))
        seen.append(w)
    assert seen[-60:] == [seen[-1]] * 60


def test_bounds_change_applies_at_once() -> None:
    a = Autoscaler(1, 4)
    a.set_bounds(1, 2)
    assert a.decide(sample(0.0, queue=0, workers=4, busy=0)) == 2
    a.set_bounds(3, 5)
    assert a.decide(sample(1.0, queue=0, workers=2, busy=0)) == 3
