"""`conductor-loop run --once` end to end: real files, real processes, real SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from conftest import intent_body, read_calls, run_cli, statuses, write_intent

pytestmark = pytest.mark.timeout(180)

STATUS_FIELDS = {
    "intent_file", "status", "message", "timestamp", "processed_by", "mode", "porch_path", "sha256", "size",
    "duration_ms", "exit_code", "attempts", "worker", "moved_to", "output_dir", "correlation_id",
}


def once(handoff: Path, out: Path, *extra: str, env: dict[str, str] | None = None):
    return run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out), "--debounce", "50ms",
                   *extra, env=env)


def test_builtin_success_files_everything(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-a.json", correlation_id="corr-1")
    write_intent(handoff, "intent-b.json", target="cu-cp", namespace="oran-cu", replicas=7)
    r = once(handoff, out_dir)
    assert r.returncode == 0, r.stderr
    assert "processed 2, skipped 0, failed 0" in r.stdout
    assert sorted(p.name for p in (handoff / "processed").iterdir()) == ["intent-a.json", "intent-b.json"]
    assert not list(handoff.glob("intent-*.json"))
    st = statuses(handoff)
    assert set(st) == {"intent-a.json", "intent-b.json"}
    a = st["intent-a.json"]
    assert STATUS_FIELDS <= set(a)
    assert a["status"] == "success" and a["processed_by"] == "conductor-loop" and a["mode"] == "direct"
    assert a["correlation_id"] == "corr-1" and a["exit_code"] in (0, None)
    assert a["moved_to"] == str(handoff / "processed" / "intent-a.json")
    assert a["timestamp"].endswith("Z") and len(a["sha256"]) == 64 and a["attempts"] == 1
    patch = yaml.safe_load((out_dir / "oran-cu" / "cu-cp-scaling" / "scaling-patch.yaml").read_text())
    assert patch["spec"]["replicas"] == 7 and patch["metadata"]["namespace"] == "oran-cu"
    kpt = yaml.safe_load((out_dir / "oran-cu" / "cu-cp-scaling" / "Kptfile").read_text())
    assert kpt["apiVersion"] == "kpt.dev/v1" and kpt["kind"] == "Kptfile"
    db = sqlite3.connect(handoff / ".conductor" / "state.db")
    rows = dict(db.execute("select path, status from intents"))
    assert rows == {str(handoff / "intent-a.json"): "success", str(handoff / "intent-b.json"): "success"}


def test_invalid_intents_fail_with_reason_and_exit_8(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-good.json")
    write_intent(handoff, "intent-replicas.json", replicas=500)
    write_intent(handoff, "intent-unknown.json", colour="blue")
    (handoff / "intent-notjson.json").write_text("{nope")
    (handoff / "intent-latin1.json").write_bytes(b'{"target": "caf\xe9"}')
    (handoff / "intent-deep.json").write_text("[" * 70 + "]" * 70)
    r = once(handoff, out_dir)
    assert r.returncode == 8, r.stderr
    assert "processed 1, skipped 0, failed 5" in r.stdout
    failed = handoff / "failed"
    for name, word in [
        ("intent-replicas.json", "replicas"),
        ("intent-unknown.json", "colour"),
        ("intent-notjson.json", "JSON"),
        ("intent-latin1.json", "UTF-8"),
        ("intent-deep.json", "64"),
    ]:
        assert (failed / name).exists(), name
        log = (failed / f"{name}.error.log").read_text()
        assert word in log, (name, log)
        doc = statuses(handoff)[name]
        assert doc["status"] == "failed" and word in doc["message"]
        assert doc["moved_to"] == str(failed / name)
    assert not (out_dir / "oran-odu" / "odu-low-scaling").exists()


def test_hostile_files_never_block_or_follow(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(intent_body()))
    os.symlink(secret, handoff / "intent-link.json")
    os.mkfifo(handoff / "intent-fifo.json")
    (handoff / "intent-dir.json").mkdir()
    big = handoff / "intent-big.json"
    big.write_text(json.dumps(intent_body(reason="x" * 300)))
    r = once(handoff, out_dir, "--max-file-size", "100")
    assert r.returncode == 8, r.stderr
    failed = handoff / "failed"
    assert (failed / "intent-link.json").is_symlink()  # moved as a link, never followed
    assert secret.exists() and json.loads(secret.read_text())["replicas"] == 3
    st = statuses(handoff)
    assert "regular" in st["intent-link.json"]["message"]
    assert "regular" in st["intent-fifo.json"]["message"]
    assert "larger" in st["intent-big.json"]["message"] or "max" in st["intent-big.json"]["message"]
    assert "regular" in st["intent-dir.json"]["message"]
    assert not list(handoff.glob("intent-*"))


def test_non_intents_are_never_touched(handoff: Path, out_dir: Path) -> None:
    names = [".intent-a.json.tmp", "intent-b.json.partial", "intent-c.json.swp", "intent-d.json~",
             "notes.txt", "other-x.json", ".hidden-intent-e.json"]
    for n in names:
        (handoff / n).write_text("{}")
    write_intent(handoff, "intent-real.json")
    r = once(handoff, out_dir)
    assert r.returncode == 0, r.stderr
    for n in names:
        assert (handoff / n).read_text() == "{}"
    assert set(statuses(handoff)) == {"intent-real.json"}


def test_dedupe_skips_identical_content_and_reruns_changed(handoff: Path, out_dir: Path,
                                                          fake_porch: Path, porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    write_intent(handoff, "intent-a.json", replicas=3)
    assert once(handoff, out_dir, "--porch", str(fake_porch), env=env).returncode == 0
    write_intent(handoff, "intent-a.json", replicas=3)  # same content again
    r = once(handoff, out_dir, "--porch", str(fake_porch), env=env)
    assert r.returncode == 0, r.stderr
    assert "skipped 1" in r.stdout
    doc = statuses(handoff)["intent-a.json"]
    assert doc["status"] == "skipped" and "already processed" in doc["message"]
    assert doc["moved_to"] != str(handoff / "processed" / "intent-a.json")  # unique suffix, no overwrite
    assert len(list((handoff / "processed").glob("intent-a*.json"))) == 2
    assert len(read_calls(porch_log)) == 1
    write_intent(handoff, "intent-a.json", replicas=4)  # changed content runs again
    assert once(handoff, out_dir, "--porch", str(fake_porch), env=env).returncode == 0
    assert len(read_calls(porch_log)) == 2
    assert statuses(handoff)["intent-a.json"]["status"] == "success"


def test_name_conflicts_never_overwrite(handoff: Path, out_dir: Path) -> None:
    (handoff / "processed").mkdir()
    (handoff / "processed" / "intent-a.json").write_text("older")
    write_intent(handoff, "intent-a.json")
    assert once(handoff, out_dir).returncode == 0
    assert (handoff / "processed" / "intent-a.json").read_text() == "older"
    doc = statuses(handoff)["intent-a.json"]
    moved = Path(doc["moved_to"])
    assert moved.exists() and moved.name.startswith("intent-a.") and moved.name.endswith("Z.json")
    assert json.loads(moved.read_text())["replicas"] == 3


def test_external_porch_argv_env_and_failure(handoff: Path, out_dir: Path, fake_porch: Path,
                                             porch_log: Path) -> None:
    write_intent(handoff, "intent-ok.json", correlation_id="c-42")
    write_intent(handoff, "intent-bad.json", target="bad-one")
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_FAIL_MATCH": "intent-bad",
           "SECRET_TOKEN": "hunter2"}
    r = once(handoff, out_dir, "--porch", str(fake_porch), "--mode", "structured", env=env)
    assert r.returncode == 8, r.stderr
    calls = {Path(c["argv"][2]).name: c for c in read_calls(porch_log)}
    ok = calls["intent-ok.json"]
    assert ok["argv"] == [str(fake_porch), "-intent", str(handoff / "intent-ok.json"), "-out", str(out_dir),
                          "-structured"]
    assert "SECRET_TOKEN" not in json.dumps(ok)
    assert ok["env"].get("CONDUCTOR_CORRELATION_ID") == "c-42"
    assert ok["env"].get("CONDUCTOR_ATTEMPT") == "1"
    assert len(ok["env"].get("CONDUCTOR_INTENT_SHA256", "")) == 64
    st = statuses(handoff)
    assert st["intent-bad.json"]["exit_code"] == 3 and st["intent-bad.json"]["status"] == "failed"
    assert "exit" in (handoff / "failed" / "intent-bad.json.error.log").read_text()
    assert st["intent-ok.json"]["porch_path"] == str(fake_porch)


def test_timeout_is_retried_then_failed(handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path) -> None:
    write_intent(handoff, "intent-slow.json")
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "hang"}
    r = once(handoff, out_dir, "--porch", str(fake_porch), "--timeout", "300ms", "--retries", "1", env=env)
    assert r.returncode == 8, r.stderr
    doc = statuses(handoff)["intent-slow.json"]
    assert doc["status"] == "failed" and "tim" in doc["message"].lower() and doc["attempts"] == 2
    calls = read_calls(porch_log)
    assert [c["env"]["CONDUCTOR_ATTEMPT"] for c in calls] == ["1", "2"]


def test_signal_death_is_failure_not_retried(handoff: Path, out_dir: Path, fake_porch: Path,
                                            porch_log: Path) -> None:
    write_intent(handoff, "intent-a.json")
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "signal"}
    r = once(handoff, out_dir, "--porch", str(fake_porch), env=env)
    assert r.returncode == 8
    assert statuses(handoff)["intent-a.json"]["status"] == "failed"
    assert len(read_calls(porch_log)) == 1


def test_priority_then_age_order(handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path) -> None:
    now = time.time()
    for i, (name, prio) in enumerate([("intent-low.json", 1), ("intent-mid-old.json", 5),
                                      ("intent-high.json", 9), ("intent-mid-new.json", 5)]):
        p = write_intent(handoff, name, priority=prio, target=f"t{i}")
        os.utime(p, (now - 100 + i, now - 100 + i))
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    assert once(handoff, out_dir, "--porch", str(fake_porch), "--workers", "1", env=env).returncode == 0
    order = [Path(c["argv"][2]).name for c in read_calls(porch_log)]
    assert order == ["intent-high.json", "intent-mid-old.json", "intent-mid-new.json", "intent-low.json"]


def test_stale_failures_do_not_make_exit_8(handoff: Path, out_dir: Path) -> None:
    (handoff / "failed").mkdir()
    (handoff / "failed" / "intent-old.json").write_text("{}")
    write_intent(handoff, "intent-new.json")
    assert once(handoff, out_dir).returncode == 0


def test_porch_checked_before_anything_is_touched(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    write_intent(handoff, "intent-a.json")
    for bad in ["/no/such/porch", str(tmp_path), "porch; rm -rf /", "$(id)"]:
        r = once(handoff, out_dir, "--porch", bad)
        assert r.returncode == 2, (bad, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert (handoff / "intent-a.json").exists() and not (handoff / "processed").exists()


def test_bad_options_exit_2(handoff: Path, out_dir: Path) -> None:
    assert once(handoff, out_dir, "--timeout", "soon").returncode == 2
    assert once(handoff, out_dir, "--max-file-size", "big").returncode == 2
    assert run_cli("run", "--once", "--nope").returncode == 2


def test_go_single_dash_spellings(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-a.json")
    r = run_cli("-handoff", str(handoff), "-out", str(out_dir), "-porch", "builtin", "-mode", "structured",
                "-once", "-debounce=50ms")
    assert r.returncode == 0, r.stderr
    assert (out_dir / "oran-odu" / "odu-high-phy-scaling" / "README.md").exists()


def test_once_over_nothing_starts_no_worker(handoff: Path, out_dir: Path) -> None:
    """A cron-driven once-run over an empty handoff (non-intents and a filed intent only) starts no worker
    process and no forkserver; the next once-run with an intent starts one and files it."""
    (handoff / "notes.txt").write_text("not an intent")
    r = once(handoff, out_dir, "--log-format", "json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    start = next(e for e in events if e["event"] == "loop.start")
    assert start["workers"] == 0 and start["backlog"] == 0
    assert not [e for e in events if e["event"].startswith("worker.")]
    assert "processed 0, skipped 0, failed 0" in r.stdout
    write_intent(handoff, "intent-a.json")
    r = once(handoff, out_dir, "--log-format", "json")
    assert r.returncode == 0 and "processed 1, skipped 0, failed 0" in r.stdout, r.stderr
    assert (handoff / "notes.txt").exists() and (handoff / "processed" / "intent-a.json").exists()


def test_dry_run_touches_nothing(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-a.json")
    write_intent(handoff, "intent-b.json", replicas=0)
    r = run_cli("run", "--dry-run", "--handoff", str(handoff), "--out", str(out_dir))
    assert r.returncode == 0, r.stderr
    assert "would run" in r.stdout and "intent-a.json" in r.stdout and "would fail" in r.stdout
    assert sorted(p.name for p in handoff.iterdir()) == ["intent-a.json", "intent-b.json"]
    assert not out_dir.exists()


def test_handoff_not_writable_exits_1(tmp_path: Path, out_dir: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("run", "--once", "--handoff", str(blocker / "handoff"), "--out", str(out_dir))
    assert r.returncode == 1, r.stderr


def test_second_instance_exits_2_naming_the_holder(handoff: Path, out_dir: Path) -> None:
    import fcntl

    (handoff / ".conductor").mkdir()
    with open(handoff / ".conductor" / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("424242\n")
        f.flush()
        r = once(handoff, out_dir)
    assert r.returncode == 2
    assert "424242" in r.stderr


def test_go_state_imported_and_exportable(handoff: Path, out_dir: Path) -> None:
    import hashlib

    body = json.dumps(intent_body()).encode()
    p = handoff / "intent-old.json"
    p.write_bytes(body)
    go = {"version": "1.0", "saved_at": "2025-01-01T00:00:00Z", "states": {str(p): {
        "file_path": str(p), "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
        "processed_at": "2025-01-01T00:00:00Z", "status": "processed"}}}
    (handoff / ".conductor-state.json").write_text(json.dumps(go))
    r = once(handoff, out_dir)
    assert r.returncode == 0, r.stderr
    # Already processed by the Go loop with this content: deduped, not run again.
    assert statuses(handoff)["intent-old.json"]["status"] == "skipped"


def test_corrupt_state_is_set_aside(handoff: Path, out_dir: Path) -> None:
    (handoff / ".conductor").mkdir()
    (handoff / ".conductor" / "state.db").write_bytes(b"this is not sqlite" * 100)
    write_intent(handoff, "intent-a.json")
    r = once(handoff, out_dir)
    assert r.returncode == 0, r.stderr
    assert list((handoff / ".conductor").glob("state.db.corrupt-*"))
    assert statuses(handoff)["intent-a.json"]["status"] == "success"


def test_long_names_are_shortened_not_errors(handoff: Path, out_dir: Path) -> None:
    name = "intent-" + "x" * 240 + ".json"
    write_intent(handoff, name, replicas=500)
    r = once(handoff, out_dir)
    assert r.returncode == 8, r.stderr
    assert (handoff / "failed" / name).exists()
    logs = list((handoff / "failed").glob("*.error.log"))
    assert len(logs) == 1 and len(logs[0].name.encode()) <= 255
    assert name in statuses(handoff)


def test_progress_bar_on_a_terminal_and_summary_line(handoff: Path, out_dir: Path) -> None:
    import pty
    import subprocess
    import sys

    for i in range(30):
        write_intent(handoff, f"intent-{i}.json", target=f"t{i}")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "conductor_loop", "run", "--once", "--handoff", str(handoff), "--out", str(out_dir),
         "--log-level", "error"],
        stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env={**os.environ, "TERM": "xterm"},
    )
    os.close(slave)
    out, _ = proc.communicate(timeout=120)
    tty = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty += chunk
    os.close(master)
    assert proc.returncode == 0
    assert "processed 30, skipped 0, failed 0" in out.decode() and "intents/s" in out.decode()
    assert b"intents" in tty and b"/30" in tty  # rich's bar: "intents ━━━ 12/30"


def test_restart_removes_stale_temp_files_but_never_final_names(handoff: Path, out_dir: Path) -> None:
    (handoff / "status").mkdir()
    stale_status = handoff / "status" / ".intent-a.json.status.cl-tmp-123-abcdef012345.tmp"
    stale_status.write_text("{half")
    pkg_tmp = out_dir / "oran-odu" / ".odu-high-phy-scaling.tmp-0123456789ab"
    pkg_tmp.mkdir(parents=True)
    (pkg_tmp / "Kptfile").write_text("half")
    old = time.time() - 3600
    os.utime(pkg_tmp, (old, old))
    keep = out_dir / "oran-odu" / "other-scaling"
    keep.mkdir()
    write_intent(handoff, "intent-b.json", target="b")
    assert once(handoff, out_dir).returncode == 0
    assert not stale_status.exists() and not pkg_tmp.exists()
    assert keep.exists()


def test_once_leaves_a_file_still_being_written_and_exits(handoff: Path, out_dir: Path) -> None:
    import subprocess
    import sys

    write_intent(handoff, "intent-done.json", target="done")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conductor_loop", "run", "--once", "--handoff", str(handoff), "--out", str(out_dir),
         "--debounce", "100ms", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    with open(handoff / "intent-open.json", "w") as f:  # a producer that never closes its file
        f.write('{"intent_type": "scaling",')
        f.flush()
        for _ in range(20):
            f.write(" ")
            f.flush()
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "processed 1, skipped 0, failed 0" in out
    assert (handoff / "intent-open.json").exists() and "intent-open.json" not in statuses(handoff)
    assert "loop.left_unsettled" in err


def _status_file(handoff: Path, name: str, body: bytes, status: str = "success") -> None:
    import hashlib

    (handoff / "status").mkdir(exist_ok=True)
    doc = {"intent_file": name, "status": status, "message": "done before the crash",
           "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
    (handoff / "status" / f"{name}.status").write_text(json.dumps(doc))


def test_restart_finishes_interrupted_cross_fs_moves(handoff: Path, out_dir: Path, fake_porch: Path,
                                                    porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    processed = handoff / "processed"
    processed.mkdir()
    # (a) crash while copying: a partial temp beside a whole source -> temp dropped, intent processed
    write_intent(handoff, "intent-a.json", target="a")
    (processed / ".intent-a.json.cl-move-4242-abcdef012345.tmp").write_text('{"partial')
    # (b) the only copy is a finished temp (source already gone) -> renamed into place, never lost
    body_b = json.dumps(intent_body(target="b")).encode()
    (processed / ".intent-b.json.cl-move-4242-0123456789ab.tmp").write_bytes(body_b)
    # (c) crash after the rename into place, before the source was unlinked: the recorded outcome and
    #     the filed copy have the source's hash -> the source is removed, nothing runs, no duplicate
    body_c = write_intent(handoff, "intent-c.json", target="c").read_bytes()
    (processed / "intent-c.json").write_bytes(body_c)
    _status_file(handoff, "intent-c.json", body_c)
    r = once(handoff, out_dir, "--porch", str(fake_porch), env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in processed.iterdir()) == ["intent-a.json", "intent-b.json", "intent-c.json"]
    assert (processed / "intent-b.json").read_bytes() == body_b
    assert (processed / "intent-c.json").read_bytes() == body_c
    assert not list(handoff.glob("intent-*.json"))
    assert [Path(c["argv"][2]).name for c in read_calls(porch_log)] == ["intent-a.json"]


def test_restart_moves_an_intent_whose_status_was_written_before_the_crash(
    handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path
) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    body = write_intent(handoff, "intent-a.json").read_bytes()
    _status_file(handoff, "intent-a.json", body)  # status written, state commit and move lost
    body_b = write_intent(handoff, "intent-b.json", target="b").read_bytes()
    _status_file(handoff, "intent-b.json", body_b + b" ")  # status of other content: must run
    r = once(handoff, out_dir, "--porch", str(fake_porch), env=env)
    assert r.returncode == 0, r.stderr
    assert [Path(c["argv"][2]).name for c in read_calls(porch_log)] == ["intent-b.json"]
    assert (handoff / "processed" / "intent-a.json").read_bytes() == body
    assert statuses(handoff)["intent-a.json"]["message"] == "done before the crash"
