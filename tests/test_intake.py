"""Intake as plain state: young files, their look-again time, once mode's give-up (no processes)."""

from __future__ import annotations

import pytest

from conductor_loop.intake import Intake
from fakeclock import FakeClock


def intake(debounce: float = 0.5) -> tuple[Intake, FakeClock, dict[str, float]]:
    clock = FakeClock()
    return Intake(debounce, clock), clock, {}


def test_old_files_are_settled_new_ones_young_until_quiet() -> None:
    i, clock, mtimes = intake()
    mtimes.update({"/h/old": clock.wall - 10, "/h/new": clock.wall - 0.1})
    assert i.settled(mtimes, mtime=mtimes.__getitem__) == ["/h/old"]
    assert set(i.young) == {"/h/new"}
    assert i.next_look() == pytest.approx(0.4 + 0.001 + 0.005)
    assert i.due() == []
    clock.advance(0.41)
    assert i.due() == ["/h/new"]
    assert i.settled(i.due(), mtime=mtimes.__getitem__) == ["/h/new"]
    assert not i.young


def test_pending_in_the_watcher_stays_young_known_and_gone_are_dropped() -> None:
    i, clock, mtimes = intake()
    mtimes.update({"/h/open": clock.wall - 10, "/h/queued": clock.wall - 10})
    i.young["/h/queued"] = 0.0
    i.young["/h/gone"] = 0.0

    def mtime(p: str) -> float:
        if p not in mtimes:
            raise FileNotFoundError(p)
        return mtimes[p]

    got = i.settled(["/h/open", "/h/queued", "/h/gone"], pending={"/h/open"},
                    known=lambda p: p == "/h/queued", mtime=mtime)
    assert got == [] and set(i.young) == {"/h/open"}
    i.forget("/h/open")
    assert not i.young


def test_once_mode_gives_young_files_up_after_max_5s_10x_debounce() -> None:
    i, clock, _ = intake(debounce=0.2)
    assert i.give_up_after == 5.0
    assert Intake(1.0).give_up_after == 10.0
    assert not i.waited_out(working=False)  # nothing young
    i.young["/h/open"] = clock.wall + 100
    assert not i.waited_out(working=False)  # the wait starts
    clock.advance(4.9)
    assert not i.waited_out(working=False)
    assert not i.waited_out(working=True)  # other work: the wait starts afresh
    clock.advance(4.9)
    assert not i.waited_out(working=False)
    clock.advance(5.0)
    assert i.waited_out(working=False)


def test_a_quiet_file_still_open_for_writing_stays_young_and_no_lease_is_reported_once() -> None:
    clock = FakeClock()
    answers: dict[str, bool | None] = {"/h/open": True, "/h/done": False, "/h/nfs": None, "/h/nfs2": None}
    i = Intake(0.5, clock, writing=answers.__getitem__)
    mtimes = {p: clock.wall - 10 for p in answers}
    assert i.settled(list(answers), mtime=mtimes.__getitem__) == ["/h/done", "/h/nfs", "/h/nfs2"]
    assert set(i.young) == {"/h/open"}
    assert i.lease_unavailable() == "/h/nfs" and i.lease_unavailable() is None
    answers["/h/open"] = False  # its writer closed it
    clock.advance(0.5)
    assert i.settled(i.due(), mtime=mtimes.__getitem__) == ["/h/open"]
    i.settled(["/h/nfs2"], mtime=mtimes.__getitem__)
    assert i.lease_unavailable() is None  # said once per run
