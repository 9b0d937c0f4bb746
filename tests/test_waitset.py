"""THE wait's poller on real pipes, connections and a real process's sentinel (conductor_loop.waitset)."""

from __future__ import annotations

import multiprocessing
import os
import time
from multiprocessing.connection import wait as mp_wait

from conductor_loop.waitset import WaitSet, readable


def test_ready_objects_come_back_in_the_order_given_as_multiprocessing_wait_gives_them() -> None:
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    left, right = multiprocessing.Pipe()
    ws = WaitSet()
    objects = [left, a_r, b_r]
    assert ws.wait(objects, 0) == [] == mp_wait(objects, 0)
    os.write(b_w, b"x")
    right.send("hello")
    assert ws.wait(objects, 1.0) == [left, b_r] == mp_wait(objects, 1.0)
    assert left.recv() == "hello" and os.read(b_r, 1) == b"x"
    assert ws.wait(objects, 0) == []
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)


def test_a_timeout_is_kept_and_none_waits_for_an_object() -> None:
    r, w = os.pipe()
    ws = WaitSet()
    t0 = time.monotonic()
    assert ws.wait([r], 0.05) == []
    assert time.monotonic() - t0 >= 0.04
    os.write(w, b"x")
    assert ws.wait([r], None) == [r]
    os.close(r)
    os.close(w)


def test_a_changed_list_is_registered_again_and_a_closed_peer_is_ready() -> None:
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    ws = WaitSet()
    assert ws.wait([r1], 0) == []
    os.write(w2, b"x")
    assert ws.wait([r1, r2], 0) == [r2]  # r2 was not registered before: it is now
    assert ws.wait([r1], 0) == []  # and no longer
    os.close(w1)  # the writer is gone: readable (EOF), as a dead worker's pipe is
    assert ws.wait([r1], 0) == [r1]
    for fd in (r1, r2, w2):
        os.close(fd)


def test_a_process_sentinel_is_ready_when_it_exits() -> None:
    proc = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0.1,))
    proc.start()
    ws = WaitSet()
    assert ws.wait([proc.sentinel], 0) == []
    assert ws.wait([proc.sentinel], 30) == [proc.sentinel]
    proc.join()


def test_readable_answers_as_connection_poll_does() -> None:
    left, right = multiprocessing.Pipe()
    assert not readable(left) and not left.poll()
    right.send(1)
    assert readable(left) and left.poll()
    assert left.recv() == 1
    right.close()
    assert readable(left) and left.poll()  # the other end is gone: the next recv says EOFError
