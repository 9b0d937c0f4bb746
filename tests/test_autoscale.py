"""The worker-count policy with a deterministic clock and load."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor_loop.autoscale import Autoscaler, CpuIdle, LoadSample


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


def _stat(user: int, idle: int, iowait: int, steal: int = 0) -> str:
    """A ``/proc/stat`` first line (user nice system idle iowait irq softirq steal guest guest_nice)."""
    return f"cpu  {user} 0 0 {idle} {iowait} 0 0 {steal} 7 7\ncpu0 1 2 3 4 5 6 7 8 9 10\n"


@pytest.mark.parametrize(
    ("before", "after", "idle"),
    [
        (_stat(100, 100, 0), _stat(150, 150, 0), 0.5),  # half busy
        (_stat(100, 100, 0), _stat(200, 100, 0), 0.0),  # saturated
        (_stat(100, 100, 0), _stat(100, 150, 50), 1.0),  # idle or waiting on the disk: both count as idle
        (_stat(0, 0, 0, steal=0), _stat(50, 25, 0, steal=25), 0.25),  # stolen ticks are busy; guests not again
        (_stat(100, 100, 0), _stat(100, 100, 0), 1.0),  # no tick passed: nothing to say
        (_stat(100, 100, 0), "cpu  x y\n", 1.0),  # unreadable line
        (_stat(100, 100, 0), "", 1.0),  # empty file
    ],
)
def test_cpu_idle_from_proc_stat(tmp_path: Path, before: str, after: str, idle: float) -> None:
    """Idle and iowait over all ticks between two looks; 1.0 when there is nothing to compare."""
    stat = tmp_path / "stat"
    stat.write_text(before)
    cpu = CpuIdle(str(stat))
    assert cpu() == 1.0  # the first look
    stat.write_text(after)
    assert cpu() == pytest.approx(idle)


def test_cpu_idle_of_this_host_and_of_a_missing_file(tmp_path: Path) -> None:
    """The real ``/proc/stat`` parses and gives a share in [0, 1] once ticks passed; a missing file says 1.0."""
    cpu = CpuIdle()
    assert cpu._ticks() is not None, "this host's /proc/stat first line did not parse"
    cpu()
    sum(i * i for i in range(300_000))  # let some ticks pass
    assert 0.0 <= cpu() <= 1.0
    gone = CpuIdle(str(tmp_path / "nothing"))
    assert gone() == 1.0 and gone() == 1.0
