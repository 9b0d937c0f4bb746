"""The pool with a trivial worker target: real processes, no porch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import pytest

from conductor_loop.health import Health
from conductor_loop.metrics import Metrics
from conductor_loop.pool import BootFailures, Death, Pool, WorkerHandle
from conductor_loop.records import Outcome, WorkItem, WorkResult
from conductor_loop.staff import Staff
from conductor_loop.telemetry import Telemetry
from poolworker import echo


def gather(pool: Pool, want_results: int = 0, want_deaths: int = 0) -> tuple[list[WorkResult], list[Death]]:
    results: list[WorkResult] = []
    deaths: list[Death] = []
    deadline = time.monotonic() + 60
    while len(results) < want_results or len(deaths) < want_deaths:
        assert time.monotonic() < deadline, (results, deaths)
        got, dead = pool.collect(wait(pool.wait_objects(), 1.0))
        results += [r for _w, batch in got for r in batch]
        deaths += dead
    return results, deaths


@pytest.fixture
def pool() -> Any:
    p = Pool("settings-1", echo, start_method="spawn")
    yield p
    p.stop(timeout=5)


def test_batches_go_out_and_come_back(pool: Pool) -> None:
    a, b = pool.spawn(), pool.spawn()
    assert pool.size == 2 and [w.id for w in (a, b)] == [1, 2]
    assert pool.send(a, [WorkItem("x"), WorkItem("y")]) and pool.send(b, [WorkItem("z")])
    assert pool.busy == 2 and a.load == 2
    results, _ = gather(pool, want_results=3)
    assert sorted(r.path for r in results) == ["x", "y", "z"]
    assert {r.message for r in results} == {"settings-1"}
    assert pool.busy == 0 and a.served == 1


def test_idle_time_is_counted_only_while_intents_were_ready(pool: Pool) -> None:
    w = pool.spawn()
    pool.send(w, [WorkItem("x")])
    gather(pool, want_results=1)
    time.sleep(0.05)
    pool.nothing_ready()  # the loop found nothing ready: idle for lack of work, not counted
    pool.send(w, [WorkItem("y")])
    gather(pool, want_results=1)
    assert pool.idle_queued_s == 0.0
    time.sleep(0.05)
    pool.send(w, [WorkItem("z")])  # ready all along: the worker waited for the loop
    assert pool.idle_queued_s >= 0.05


def test_a_dead_worker_is_reaped_with_the_intents_it_held(pool: Pool) -> None:
    w = pool.spawn()
    pool.send(w, [WorkItem("die"), WorkItem("other")])
    _, deaths = gather(pool, want_deaths=1)
    (death,) = deaths
    assert death.worker is w and death.exitcode == 3 and "exited with code 3" in death.reason
    assert [i.path for i in death.lost] == ["die", "other"] and death.touched
    assert pool.size == 0
    w = pool.spawn()
    pool.send(w, [WorkItem("quit")])
    _, (death,) = gather(pool, want_deaths=1)
    assert death.exitcode == 4 and [i.path for i in death.lost] == ["quit"] and not death.touched


def test_hand_back_finishes_the_running_item_and_returns_the_rest(pool: Pool) -> None:
    w = pool.spawn()
    pool.send(w, [WorkItem("nap"), WorkItem("x"), WorkItem("y")])
    deadline = time.monotonic() + 60
    while not pool.heartbeat[w.slot]:  # the worker started on "nap"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pool.hand_back()
    pool.send(w, [WorkItem("z")])  # a batch sent after the stop began is given back whole
    results, _ = gather(pool, want_results=4)
    got = {r.path: r.outcome for r in results}
    assert got == {"nap": Outcome.SUCCESS, "x": Outcome.RETURNED, "y": Outcome.RETURNED, "z": Outcome.RETURNED}


def test_a_stalled_worker_is_killed(pool: Pool) -> None:
    w = pool.spawn()
    pool.send(w, [WorkItem("hang")])
    deadline = time.monotonic() + 60
    while not pool.heartbeat[w.slot]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert pool.stalled(3600) == []
    (death,) = pool.stalled(0.0)
    assert "stopped heartbeating" in death.reason and [i.path for i in death.lost] == ["hang"]


def test_retire_lets_a_worker_finish_then_leave(pool: Pool) -> None:
    w = pool.spawn()
    pool.send(w, [WorkItem("x")])
    pool.retire(w)
    assert pool.size == 0 and pool.idle_workers() == []
    results, deaths = gather(pool, want_results=1, want_deaths=1)
    assert [r.path for r in results] == ["x"] and deaths[0].lost == []


def test_boot_failures_in_a_row_are_fatal() -> None:
    now = [100.0]
    boot = BootFailures(grace=5.0, fatal=3, clock=lambda: now[0])

    def handle(served: int = 0, retiring: bool = False) -> WorkerHandle:
        return WorkerHandle(slot=0, proc=None, conn=None, started=99.0, served=served, retiring=retiring)  # type: ignore[arg-type]

    assert not boot.exited(handle()) and not boot.exited(handle())
    assert not boot.exited(handle(served=1))  # one that served breaks the run
    assert not boot.exited(handle(retiring=True))
    assert [boot.exited(handle()) for _ in range(3)] == [False, False, True]
    now[0] = 200.0
    assert not boot.exited(handle()) and boot.count == 0  # died long after its start: not a boot failure


def test_forkserver_starts_when_the_staff_expects_work_and_preloads() -> None:
    """No forkserver for a pool alone, nor for a once-run that found nothing; once files are found (or in
    watch mode) it runs, its imports under way before any spawn, told to preload what the pool was given,
    which the loop's own process never imported (a fresh interpreter, so no forkserver of an earlier test)."""
    script = (
        "import os, sys, time\n"
        "from conductor_loop.health import Health\n"
        "from conductor_loop.metrics import Metrics\n"
        "from conductor_loop.pool import Pool\n"
        "from conductor_loop.staff import Staff\n"
        "from conductor_loop.telemetry import Telemetry\n"
        "from poolworker import echo\n"
        "def kids():\n"
        "    return [open(f'/proc/{c}/cmdline', 'rb').read() for t in os.listdir('/proc/self/task')\n"
        "            for c in open(f'/proc/self/task/{t}/children').read().split()]\n"
        "p = Pool('s', echo, start_method='forkserver', preload=('conductor_loop.porch',))\n"
        "staff = Staff(p, Telemetry(Metrics(), Health(), None), (1, 2))\n"
        "staff.prepare(0, True)\n"
        "staff.start(0, True)\n"
        "assert kids() == [] and p.size == 0, kids()\n"
        "staff.prepare(3, True)\n"
        "def forkserver():  # its command line is there once its exec is done (an empty one until then)\n"
        "    return any(b'multiprocessing.forkserver' in k and b'conductor_loop.porch' in k for k in kids())\n"
        "deadline = time.monotonic() + 20\n"
        "while not forkserver() and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "assert forkserver(), kids()\n"
        "assert 'conductor_loop.porch' not in sys.modules  # imported there, not here\n"
        "p.stop(timeout=5)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


_WARM = (
    "import os, sys, time\n"
    "from conductor_loop.warmup import warm_workers\n"
    "def kids():\n"
    "    return [open(f'/proc/{c}/cmdline', 'rb').read() for t in os.listdir('/proc/self/task')\n"
    "            for c in open(f'/proc/self/task/{t}/children').read().split()]\n"
    "handoff, once = sys.argv[1], sys.argv[2] == 'once'\n"
    "if once:\n"
    "    assert warm_workers(handoff, (), True) is False and kids() == [], kids()\n"
    "    open(os.path.join(handoff, 'intent-a.json'), 'w').close()\n"
    "assert warm_workers(handoff, (), once) is True\n"
    "def forkserver():  # its command line is there once its exec is done (an empty one until then)\n"
    "    return any(b'multiprocessing.forkserver' in k and b'conductor_loop.worker' in k for k in kids())\n"
    "deadline = time.monotonic() + 20\n"
    "while not forkserver() and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
    "assert forkserver(), kids()\n"
    "assert 'conductor_loop.worker' not in sys.modules  # imported there, not here\n"
    "print('ok')\n"
)


@pytest.mark.parametrize("mode", ["once", "watch"])
def test_the_command_line_starts_the_forkserver_early_unless_a_once_run_has_no_intent(tmp_path: Path,
                                                                                     mode: str) -> None:
    """``warmup.warm_workers``: a once-run over a handoff holding no intent candidate (a note, a hidden file, the
    loop's own directories) starts no process; with one, or in watch mode, the forkserver runs with the worker's
    modules to preload (a fresh interpreter each, so no forkserver of an earlier test)."""
    handoff = tmp_path / "handoff"
    (handoff / "processed").mkdir(parents=True)
    (handoff / "notes.txt").write_text("not an intent")
    (handoff / ".intent-b.json").write_text("{}")
    r = subprocess.run([sys.executable, "-c", _WARM, str(handoff), mode], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.parametrize(("backlog", "once", "started"), [(0, True, 0), (0, False, 1), (1, True, 1), (5, True, 2)])
def test_first_workers_by_backlog_and_mode(pool: Pool, backlog: int, once: bool, started: int) -> None:
    """A once-run with nothing to do starts no worker; watch mode starts the floor; a backlog up to the ceiling."""
    staff = Staff(pool, Telemetry(Metrics(), Health(), None), (1, 2))
    staff.start(backlog, once)
    assert pool.size == started


def test_a_worker_is_started_when_an_intent_turns_up_and_none_lives(pool: Pool) -> None:
    """cover(): nothing ready, nothing started; ready with no worker, one; ready with a worker, no more."""
    staff = Staff(pool, Telemetry(Metrics(), Health(), None), (1, 2))
    staff.start(0, True)
    staff.cover(False)
    assert pool.size == 0
    staff.cover(True)
    assert pool.size == 1
    staff.cover(True)
    assert pool.size == 1
    assert pool.send(next(iter(pool.workers.values())), [WorkItem("x")])
    results, _ = gather(pool, want_results=1)
    assert [r.path for r in results] == ["x"]
