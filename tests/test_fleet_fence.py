"""Self-fencing policy (fleet/fence.py) on a fake clock: heartbeats every lease/3, the lease counted from the
send time of the last confirmed heartbeat, lost at 0.9 x lease and never regained."""

from __future__ import annotations

import pytest

from conductor_loop.fleet.fence import Lease
from fakeclock import FakeClock


def test_heartbeats_are_due_every_third_of_the_lease() -> None:
    clock = FakeClock()
    lease = Lease(3.0, clock)
    assert not lease.due() and lease.wait() == pytest.approx(1.0)
    clock.advance(1.0)
    assert lease.due()
    sent = lease.sending()
    assert not lease.due()
    clock.advance(0.1)
    lease.confirmed(sent)
    assert lease.remaining() == pytest.approx(2.7 - 0.1)


def test_confirmed_heartbeats_keep_the_lease_for_a_run_longer_than_it() -> None:
    clock = FakeClock()
    lease = Lease(1.0, clock)
    for _ in range(30):  # 10 leases' worth of run time
        clock.advance(lease.wait())
        if lease.due():
            lease.confirmed(lease.sending())
    assert not lease.lost()


def test_unconfirmed_heartbeats_lose_the_lease_at_nine_tenths() -> None:
    clock = FakeClock()
    lease = Lease(2.0, clock)
    clock.advance(0.7)
    lease.sending()  # sent, never confirmed (broker unreachable)
    clock.advance(1.0)
    assert not lease.lost()
    clock.advance(0.11)
    assert lease.lost() and not lease.due() and lease.remaining() == 0.0


def test_a_stopped_worker_finds_its_lease_lost_and_a_late_confirmation_does_not_revive_it() -> None:
    clock = FakeClock()
    lease = Lease(2.0, clock)
    clock.advance(0.5)
    sent = lease.sending()
    clock.advance(5.0)  # SIGSTOP for longer than the lease
    assert lease.lost()
    lease.confirmed(sent + 5.0)
    assert lease.lost()


def test_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Lease(0)
