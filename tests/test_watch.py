"""Watch mode as a daemon: settle, crash safety, signals, health."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import intent_body, read_calls, run_cli, statuses, write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(240)


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def status_of(handoff: Path, name: str) -> dict | None:
    return statuses(handoff).get(name)


def test_slow_writer_is_processed_once_whole(handoff: Path, out_dir: Path, fake_porch: Path,
                                            porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    with LoopProcess(handoff, out_dir, "--debounce", "200ms", "--porch", str(fake_porch), env=env) as loop:
        loop.ready()
        body = json.dumps(intent_body(reason="r" * 200)).encode()
        with open(handoff / "intent-slow.json", "wb") as f:
            for i in range(0, len(body), 40):
                f.write(body[i:i + 40])
                f.flush()
                time.sleep(0.3)  # pauses longer than the debounce while the file is open
        wait_for(lambda: status_of(handoff, "intent-slow.json"), what="status")
        time.sleep(0.5)
        assert loop.stop() == 0
    calls = read_calls(porch_log)
    assert len(calls) == 1
    assert status_of(handoff, "intent-slow.json")["sha256"] == sha(body)
    assert (handoff / "processed" / "intent-slow.json").read_bytes() == body


def test_burst_of_rewrites_runs_once_on_last_content(handoff: Path, out_dir: Path, fake_porch: Path,
                                                    porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    with LoopProcess(handoff, out_dir, "--debounce", "300ms", "--porch", str(fake_porch), env=env) as loop:
        loop.ready()
        last = b""
        for i in range(1, 31):
            last = json.dumps(intent_body(replicas=i)).encode()
            (handoff / "intent-burst.json").write_bytes(last)
        wait_for(lambda: status_of(handoff, "intent-burst.json"), what="status")
        time.sleep(0.6)
        assert loop.stop() == 0
    assert len(read_calls(porch_log)) == 1
    assert status_of(handoff, "intent-burst.json")["sha256"] == sha(last)


def test_rename_into_place_vanish_and_ignored_names(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "200ms") as loop:
        loop.ready()
        staged = tmp_path / "staged.json"
        staged.write_text(json.dumps(intent_body()))
        os.rename(staged, handoff / "intent-renamed.json")
        gone = handoff / "intent-gone.json"
        gone.write_text(json.dumps(intent_body()))
        gone.unlink()  # vanishes before it settles
        (handoff / ".intent-x.json.tmp").write_text("{}")
        wait_for(lambda: status_of(handoff, "intent-renamed.json"), what="renamed status")
        time.sleep(0.8)
        assert loop.stop() == 0
    assert set(statuses(handoff)) == {"intent-renamed.json"}
    assert (handoff / ".intent-x.json.tmp").exists()


def test_change_while_porch_runs_is_processed_again(handoff: Path, out_dir: Path, fake_porch: Path,
                                                   porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:1.5"}
    with LoopProcess(handoff, out_dir, "--debounce", "100ms", "--porch", str(fake_porch), env=env) as loop:
        loop.ready()
        write_intent(handoff, "intent-a.json", replicas=1)
        wait_for(lambda: read_calls(porch_log), what="first porch call")
        new = json.dumps(intent_body(replicas=2)).encode()
        (handoff / "intent-a.json").write_bytes(new)
        wait_for(lambda: len(read_calls(porch_log)) >= 2, timeout=30, what="second porch call")
        wait_for(lambda: (handoff / "processed" / "intent-a.json").exists(), what="filed")
        time.sleep(0.3)
        assert loop.stop() == 0
    assert (handoff / "processed" / "intent-a.json").read_bytes() == new
    assert status_of(handoff, "intent-a.json")["sha256"] == sha(new)
    assert [p.name for p in (handoff / "processed").iterdir()] == ["intent-a.json"]


def test_sigterm_lets_inflight_finish_and_exits_0(handoff: Path, out_dir: Path, fake_porch: Path,
                                                 porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:1"}
    loop = LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), env=env)
    try:
        loop.ready()
        write_intent(handoff, "intent-a.json")
        wait_for(lambda: read_calls(porch_log), what="porch started")
        loop.signal(signal.SIGTERM)
        assert loop.proc.wait(30) == 0
    finally:
        loop.close()
    assert (handoff / "processed" / "intent-a.json").exists()
    assert status_of(handoff, "intent-a.json")["status"] == "success"


def test_second_sigint_forces_exit_leaving_every_intent_in_one_place(handoff: Path, out_dir: Path,
                                                                    fake_porch: Path, porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:600"}
    for i in range(6):
        write_intent(handoff, f"intent-{i}.json", target=f"t{i}")
    loop = LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), "--workers", "2",
                       "--timeout", "900s", env=env)
    try:
        wait_for(lambda: len(read_calls(porch_log)) >= 2, what="porch running")
        loop.signal(signal.SIGINT)
        time.sleep(0.3)
        loop.signal(signal.SIGINT)
        assert loop.proc.wait(120) == 0  # long before the 600 s porch runs would end
    finally:
        loop.close()
    for i in range(6):
        places = [p for p in (handoff / f"intent-{i}.json", handoff / "processed" / f"intent-{i}.json",
                              handoff / "failed" / f"intent-{i}.json") if p.exists()]
        assert len(places) == 1, (i, places)
    # porch's process groups were killed, not orphaned
    for c in read_calls(porch_log):
        with pytest.raises(ProcessLookupError):
            os.kill(c["pid"], 0)


def test_sigkill_and_restart_loses_nothing_and_reruns_no_success(handoff: Path, out_dir: Path,
                                                                  fake_porch: Path, porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:0.05"}
    n = 60
    bodies = {}
    for i in range(n):
        bodies[f"intent-{i:03d}.json"] = write_intent(handoff, f"intent-{i:03d}.json", target=f"t{i}").read_bytes()
    for more_calls, extra_delay in ((6, 0.0), (8, 0.07)):
        loop = LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), "--workers", "2",
                           env=env, metrics=False)
        # Kill mid-stream: once porch has been called a few more times (not at a fixed time, which a loaded
        # machine would turn into "before anything ran"), at varying offsets within a porch run.
        start = len(read_calls(porch_log))
        wait_for(lambda: len(read_calls(porch_log)) >= start + more_calls, timeout=60, what="porch calls")
        time.sleep(extra_delay)
        os.killpg(loop.proc.pid, signal.SIGKILL)
        loop.close()
    done_before = {name for name, doc in statuses(handoff).items() if doc["status"] == "success"}
    calls_before = len(read_calls(porch_log))
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(fake_porch),
                "--debounce", "50ms", env=env)
    assert r.returncode == 0, r.stderr
    processed = {p.name: p.read_bytes() for p in (handoff / "processed").iterdir()}
    assert processed == bodies  # every intent exactly once, whole, under its own name
    assert not list(handoff.glob("intent-*.json"))
    assert not list(handoff.rglob(".*.tmp"))
    rerun = {Path(c["argv"][2]).name for c in read_calls(porch_log)[calls_before:]}
    assert done_before, "the kills came too late to test anything"
    assert not (rerun & done_before), sorted(rerun & done_before)
    assert all(doc["status"] == "success" for doc in statuses(handoff).values())


def test_overflow_30000_files_all_processed_once(handoff: Path, out_dir: Path) -> None:
    """30,000 files while the loop cannot read events: far past the default 16,384-event queue."""
    with LoopProcess(handoff, out_dir, "--debounce", "100ms") as loop:
        loop.ready()
        body = json.dumps(intent_body()).encode()
        n = 30000
        loop.signal(signal.SIGSTOP)  # the kernel queue fills up and overflows
        try:
            for i in range(n):
                fd = os.open(handoff / f"intent-{i:05d}.json", os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(fd, body)
                os.close(fd)
        finally:
            loop.signal(signal.SIGCONT)
        wait_for(lambda: len(os.listdir(handoff / "processed")) >= n, timeout=200, interval=1, what="all filed")
        time.sleep(1.0)
        rescans = loop.metric("conductor_rescans_total")
        assert loop.stop() == 0
    assert len(os.listdir(handoff / "processed")) == n  # none twice: a rerun would add a suffixed copy
    docs = statuses(handoff)
    assert len(docs) == n and {d["status"] for d in docs.values()} == {"success"}
    assert rescans is not None and rescans >= 1  # the queue overflowed and the loop rescanned


def test_handoff_recreated_is_rescanned(handoff: Path, out_dir: Path) -> None:
    import shutil

    with LoopProcess(handoff, out_dir, "--debounce", "100ms") as loop:
        loop.ready()
        shutil.rmtree(handoff)  # the loop makes it again and watches the new directory
        wait_for(lambda: handoff.is_dir(), timeout=30, what="handoff recreated")
        loop.ready()
        write_intent(handoff, "intent-after.json")
        wait_for(lambda: (handoff / "processed" / "intent-after.json").exists(), timeout=60, what="processed")
        assert loop.get("/healthz")[0] == 200
        # the new directory is owned too: its lock is held and its state is written
        assert (handoff / ".conductor" / "state.db").exists()
        r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), timeout=30)
        assert r.returncode == 2, r.stderr
        assert loop.stop() == 0


def test_health_metrics_and_dead_worker_replaced(handoff: Path, out_dir: Path, fake_porch: Path,
                                                porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:2"}
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), "--workers", "1",
                     env=env) as loop:
        loop.ready()
        assert loop.get("/healthz")[0] == 200 and loop.get("/livez")[0] == 200
        assert loop.metric("conductor_workers") == 1
        write_intent(handoff, "intent-a.json")
        wait_for(lambda: read_calls(porch_log), what="porch running")
        worker_pid = loop.wait_event("worker.start")[0]["pid"]
        os.kill(worker_pid, signal.SIGKILL)
        loop.wait_event("worker.exit")
        loop.wait_event("worker.start", count=2)
        wait_for(lambda: (handoff / "processed" / "intent-a.json").exists(), timeout=60, what="requeued + done")
        assert loop.metric("conductor_workers") == 1
        assert loop.stop() == 0


def test_sighup_reload_and_ttin_ttou(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('min_workers = 1\nmax_workers = 1\n')
    with LoopProcess(handoff, out_dir, "--config", str(cfg), "--debounce", "50ms") as loop:
        loop.ready()
        cfg.write_text('min_workers = 2\nmax_workers = 3\ndebounce = "80ms"\n')
        loop.signal(signal.SIGHUP)
        ev = loop.wait_event("config.reload", outcome="applied")[0]
        assert ev["max_workers"] == 3 and ev["min_workers"] == 2
        wait_for(lambda: loop.metric("conductor_workers") == 2, what="2 workers")
        loop.signal(signal.SIGTTIN)
        assert loop.wait_event("pool.ceiling")[0]["max_workers"] == 4
        loop.signal(signal.SIGTTOU)
        assert loop.wait_event("pool.ceiling", count=2)[-1]["max_workers"] == 3
        loop.signal(signal.SIGTTOU)  # (standard signals coalesce: one at a time)
        assert loop.wait_event("pool.ceiling", count=3)[-1]["max_workers"] == 2
        cfg.write_text('max_workers = "lots"\n')
        loop.signal(signal.SIGHUP)
        loop.wait_event("config.reload", outcome="failed")
        write_intent(handoff, "intent-a.json")  # still working after a bad reload
        wait_for(lambda: (handoff / "processed" / "intent-a.json").exists(), what="processed")
        assert loop.stop() == 0


def test_pool_grows_under_load(handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:0.3"}
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), "--min-workers", "1",
                     "--max-workers", "2", env=env) as loop:
        loop.ready()
        assert loop.metric("conductor_workers") == 1
        for i in range(40):
            write_intent(handoff, f"intent-{i}.json", target=f"t{i}")
        wait_for(lambda: loop.metric("conductor_workers") == 2, timeout=30, what="grown to 2")
        loop.wait_event("pool.resize")
        assert loop.stop() == 0


def test_cleanup_removes_old_filed_intents(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--cleanup-after", "1s") as loop:
        loop.ready()
        write_intent(handoff, "intent-a.json")
        write_intent(handoff, "intent-bad.json", replicas=0)
        wait_for(lambda: (handoff / "processed" / "intent-a.json").exists(), what="processed")
        loop.wait_event("cleanup.removed", timeout=30)
        wait_for(lambda: not (handoff / "processed" / "intent-a.json").exists(), what="cleaned")
        wait_for(lambda: not list((handoff / "failed").iterdir()), what="failed cleaned")
        wait_for(lambda: not list((handoff / "status").iterdir()), what="status cleaned")
        assert loop.stop() == 0


def test_lost_watch_turns_health_and_readiness_red_until_it_is_back(handoff: Path, out_dir: Path,
                                                                    tmp_path: Path) -> None:
    import shutil

    with LoopProcess(handoff, out_dir, "--debounce", "100ms") as loop:
        loop.ready()
        blocker = tmp_path / "blocker"
        for _ in range(50):  # put a plain file where the directory was (the loop races to remake it)
            shutil.rmtree(handoff, ignore_errors=True)
            blocker.write_text("not a directory")
            try:
                os.rename(blocker, handoff)
                break
            except OSError:
                continue
        assert handoff.is_file()
        # a dead watch must not look alive
        wait_for(lambda: loop.get("/healthz")[0] == 503, timeout=30, what="/healthz 503")
        assert loop.get("/readyz")[0] == 503
        assert loop.metric("conductor_watcher_up") == 0
        handoff.unlink()
        wait_for(lambda: loop.get("/healthz")[0] == 200, timeout=30, what="/healthz 200 again")
        loop.ready()
        write_intent(handoff, "intent-back.json")
        wait_for(lambda: (handoff / "processed" / "intent-back.json").exists(), timeout=30, what="processed")
        assert loop.stop() == 0


def test_second_instance_exits_2(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "50ms") as loop:
        loop.ready()
        r = run_cli("run", "--handoff", str(handoff), "--out", str(out_dir), timeout=30)
        assert r.returncode == 2
        assert str(loop.proc.pid) in r.stderr
        assert loop.stop() == 0
