"""The ingest side's policies without processes: flights (back-pressure, backoff, deadline, probe), the
broker's health for /readyz, packages and the newer-intent rule, the saved table, the fleet options."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conductor_loop.config import ConfigError, resolve
from conductor_loop.fleet import accept, flights
from conductor_loop.fleet.flights import Flight, Flights, Phase
from conductor_loop.fleet.ingest import BrokerHealth
from conductor_loop.records import Outcome, WorkItem, WorkResult
from fakeclock import FakeClock


def flight(tid: str, path: str = "/h/intent-a.json", sha: str = "a" * 64, attempt: int = 1) -> Flight:
    res = WorkResult(path, Outcome.VANISHED, "", attempt, 0, sha256=sha)
    return Flight(tid, WorkItem(path, attempt=attempt), res, 0.0, b"body")


def test_room_is_the_cap_less_what_is_out_and_only_in_flight_tasks_count() -> None:
    fs = Flights(cap=2, lease=2.0, max_deliver=3, timeout=30.0, clock=FakeClock())
    fs.add(flight("t1"))
    assert fs.room() == 1
    fs.add(flight("t2", "/h/intent-b.json"))
    assert fs.room() == 0
    assert fs.take("t1") is not None and fs.take("t1") is None  # a second result for t1 is a duplicate
    assert fs.room() == 1 and "t2" in fs and "t1" not in fs


def test_no_room_once_the_tasks_held_reach_the_byte_cap_and_one_may_cross_it() -> None:
    fs = Flights(cap=8, lease=2.0, max_deliver=3, timeout=30.0, clock=FakeClock(), bytes_cap=10)
    big = flight("t1")
    big.body = b"x" * 25  # larger than the cap: still goes out, alone
    assert fs.room() == 8
    fs.add(big)
    assert (fs.bytes, fs.room()) == (25, 0)
    fs.take("t1")
    assert (fs.bytes, fs.room()) == (0, 8)
    for k, size in enumerate((4, 4, 1)):  # 4, 8, 9 bytes held: below the cap, room by count
        f = flight(f"s{k}", f"/h/intent-{k}.json")
        f.body = b"x" * size
        fs.add(f)
    assert (fs.bytes, fs.room()) == (9, 5)
    f = flight("s3", "/h/intent-3.json")
    f.body = b"x" * 3
    fs.add(f)
    assert (fs.bytes, fs.room()) == (12, 0)  # crossed by one task
    fs.add(f)  # the same task added again (adopted at a restart) is counted once
    assert fs.bytes == 12
    fs.take("s0")
    assert (fs.bytes, fs.room()) == (8, 5)  # three held, 8 bytes: below the cap again
    assert Flights(8, 2.0, 3, 30.0, FakeClock()).room() == 8  # no byte cap given: the count alone


def test_a_task_re_encoded_with_the_result_cap_counts_its_new_bytes() -> None:
    fs = Flights(cap=8, lease=2.0, max_deliver=3, timeout=30.0, clock=FakeClock(), bytes_cap=100)
    f = flight("t1")
    fs.add(f)
    fs.rebody(f, b"a longer body", 4096)
    assert (f.body, f.result_cap, fs.bytes) == (b"a longer body", 4096, 13)
    fs.take("t1")
    assert fs.bytes == 0


def test_a_failed_publish_backs_off_doubling_to_the_cap() -> None:
    clock = FakeClock()
    fs = Flights(4, 2.0, 3, 30.0, clock)
    fs.add(flight("t1"))
    delays = []
    for _ in range(7):
        f = fs.failed("t1")
        assert f is not None and f.phase is Phase.BACKOFF
        delays.append(f.retry_at - clock.monotonic())
        assert fs.due_publish() == []
        clock.advance(delays[-1])
        assert [x.task_id for x in fs.due_publish()] == ["t1"]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert fs.published("t1", 7) is not None and fs.get("t1").failures == 0  # type: ignore[union-attr]


def test_the_deadline_probes_once_and_a_lost_task_is_published_again_a_present_one_waits() -> None:
    clock = FakeClock()
    fs = Flights(4, lease=2.0, max_deliver=3, timeout=30.0, clock=clock)
    assert fs.deadline_s == 2.0 * 4 + 30.0
    fs.add(flight("t1"))
    fs.published("t1", seq=5)
    assert fs.by_seq(5) is fs.get("t1")
    clock.advance(37.9)
    assert fs.due_probe() == []
    clock.advance(0.2)
    assert [f.task_id for f in fs.due_probe()] == ["t1"]
    assert fs.due_probe() == []  # being probed: not again
    assert fs.probed("t1", present=True) is None  # still in the stream: a new deadline
    clock.advance(38.1)
    assert [f.task_id for f in fs.due_probe()] == ["t1"]
    again = fs.probed("t1", present=False)
    assert again is not None and again.phase is Phase.PUBLISHING and again.publishes == 2
    assert again.msg_id == "t1.1"
    fs.published("t1", seq=9)  # the republish is stored anew
    assert fs.by_seq(9) is again and fs.by_seq(5) is None


def test_a_task_lost_more_than_max_losses_times_is_not_published_again() -> None:
    clock = FakeClock()
    fs = Flights(4, lease=1.0, max_deliver=1, timeout=1.0, clock=clock)
    fs.add(flight("t1"))
    given_up = []
    for seq in range(1, flights.MAX_LOSSES + 2):
        fs.published("t1", seq=seq)
        clock.advance(fs.deadline_s)
        assert [f.task_id for f in fs.due_probe()] == ["t1"]
        lost = fs.probed("t1", present=False)
        assert lost is not None and lost.losses == seq
        given_up.append(lost.lost_too_often)
    assert given_up == [False] * flights.MAX_LOSSES + [True]


def test_the_table_is_saved_and_loaded_by_intent_name(tmp_path: Path) -> None:
    fs = Flights(4, 2.0, 3, 30.0, FakeClock())
    fs.add(flight("t1", "/h/intent-a.json", "b" * 64, attempt=2))
    path = str(tmp_path / "fleet-inflight.json")
    flights.save(path, fs)
    assert not fs.changed
    assert flights.load(path) == {"intent-a.json": ("t1", "b" * 64, 2)}
    Path(path).write_text("{not json")
    assert flights.load(path) == {}
    assert flights.load(str(tmp_path / "missing.json")) == {}


def test_readyz_fails_only_after_the_broker_is_away_longer_than_the_lease() -> None:
    clock = FakeClock()
    h = BrokerHealth(lease=2.0, clock=clock)
    assert h.unready() is None  # starting: not yet a lease
    clock.advance(2.5)
    assert "not connected to the broker yet" in (h.unready() or "")
    assert h.changed(True, "connected") and h.unready() is None
    assert not h.changed(True, "connected")
    h.changed(False, "lost the connection")
    clock.advance(1.9)
    assert h.unready() is None
    clock.advance(0.2)
    assert "lost the connection" in (h.unready() or "")


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_a_package_is_the_first_directory_down_each_path_that_holds_a_file(tmp_path: Path) -> None:
    _tree(tmp_path, {"ns/web-scaling/Kptfile": "", "ns/web-scaling/sub/x.yaml": "", "ns/db-scaling/Kptfile": "",
                     "top.yaml": "", "a/b/c/d.txt": ""})
    (tmp_path / "empty").mkdir()
    assert accept.packages(str(tmp_path)) == ["a/b/c", "ns/db-scaling", "ns/web-scaling", "top.yaml"]


def test_install_never_overwrites_the_package_of_a_newer_intent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()

    def deliver(replicas: int, key: tuple[int, str]) -> tuple[list[str], list[tuple[str, str]]]:
        tmp = tmp_path / f"tmp-{replicas}"
        _tree(tmp, {"ns/web-scaling/Kptfile": f"replicas: {replicas}\n"})
        return accept.install(str(tmp), str(out), key)

    kpt = out / "ns" / "web-scaling" / "Kptfile"
    assert deliver(2, (200, "intent-b.json"))[0] == [str(out / "ns" / "web-scaling")]
    installed, skipped = deliver(1, (100, "intent-a.json"))  # older intent, later result
    assert installed == [] and skipped == [(str(out / "ns" / "web-scaling"), "intent-b.json")]
    assert kpt.read_text() == "replicas: 2\n"
    deliver(3, (300, "intent-c.json"))
    assert kpt.read_text() == "replicas: 3\n"
    deliver(4, (300, "intent-c.json"))  # the same intent again (a re-run after a crash): installed
    assert kpt.read_text() == "replicas: 4\n"
    assert json.loads((out / "ns" / ".web-scaling.cl-owner").read_text()) == [300, "intent-c.json"]


def test_stale_accept_temps_are_removed_at_start_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / ".cl-fleet-0123").mkdir()
    (tmp_path / "ns").mkdir()
    (tmp_path / ".cl-fleet-file").write_text("")
    assert accept.remove_stale_temps(str(tmp_path)) == 1
    assert sorted(os.listdir(tmp_path)) == [".cl-fleet-file", "ns"]


def test_fleet_options_come_through_every_layer_and_are_checked(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('executor = "fleet"\nbroker = "nats://127.0.0.1:4222"\nfleet-inflight = 8\nfleet_lease = "5s"\n')
    env = {"CONDUCTOR_FLEET": "blue", "CONDUCTOR_FLEET_MAX_DELIVER": "5", "CONDUCTOR_FLEET_INFLIGHT_BYTES": "8MiB"}
    cfg, src = resolve({"fleet_inflight": "16"}, env, str(conf), default_config_path="")
    assert (cfg.executor, cfg.broker, cfg.fleet, cfg.fleet_inflight, cfg.fleet_lease, cfg.fleet_max_deliver) == (
        "fleet", "nats://127.0.0.1:4222", "blue", 16, 5.0, 5)
    assert src["fleet_inflight"] == "flag" and src["fleet"] == "env CONDUCTOR_FLEET"
    assert src["fleet_lease"].startswith("file ")
    assert (cfg.fleet_inflight_bytes, src["fleet_inflight_bytes"]) == (8 << 20, "env CONDUCTOR_FLEET_INFLIGHT_BYTES")
    assert resolve({}, {}, None, default_config_path="")[0].fleet_inflight_bytes == 64 << 20
    assert resolve({}, {}, None, default_config_path="")[0].executor == "local"
    for flags, needle in (({"executor": "fleet"}, "broker"), ({"fleet": "no/slash"}, "fleet"),
                          ({"fleet_inflight": "0"}, "fleet_inflight"), ({"fleet_lease": "10ms"}, "fleet_lease"),
                          ({"fleet_inflight_bytes": "0"}, "fleet_inflight_bytes"),
                          ({"executor": "fleet", "broker": "http://x"}, "nats://")):
        with pytest.raises(ConfigError, match=needle):
            resolve(flags, {}, None, default_config_path="")
