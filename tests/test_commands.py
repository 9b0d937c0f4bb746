"""The operator commands (README, "Usage"): status, retry, state export|import|prune, config show.

Every test drives the real CLI in subprocesses against handoff directories made by real ``run`` runs.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import intent_body, read_calls, run_cli, statuses, write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(120)

SUFFIXED = re.compile(r"^intent-a\.\d{8}T\d{6}\.\d{3}Z(?:\.\d+)?\.json$")


def run_once(handoff: Path, out: Path, porch: Path | None = None, env: dict[str, str] | None = None,
             log: Path | None = None) -> int:
    args = ["run", "--once", "--handoff", str(handoff), "--out", str(out), "--workers", "1"]
    if porch is not None:
        args += ["--porch", str(porch)]
    full = dict(env or {})
    if log is not None:
        full["CONDUCTOR_FAKEPORCH_LOG"] = str(log)
    r = run_cli(*args, env=full)
    assert r.returncode in (0, 8), r.stderr
    return r.returncode


def status_json(handoff: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = run_cli("status", "--handoff", str(handoff), "--json", *extra, env=env)
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def failed_files(handoff: Path) -> list[str]:
    return sorted(p.name for p in (handoff / "failed").iterdir() if not p.name.endswith(".error.log"))


# ---------------------------------------------------------------------------------- status


def test_status_after_mixed_run(handoff: Path, out_dir: Path, fake_porch: Path) -> None:
    write_intent(handoff, "intent-ok1.json", target="a1")
    write_intent(handoff, "intent-ok2.json", target="a2")
    write_intent(handoff, "intent-boom.json", target="a3")
    write_intent(handoff, "intent-bad.json", replicas=1000)  # invalid: never reaches porch
    (handoff / "notes.txt").write_text("not an intent")
    rc = run_once(handoff, out_dir, fake_porch, env={"CONDUCTOR_FAKEPORCH_FAIL_MATCH": "boom"})
    assert rc == 8
    write_intent(handoff, "intent-waiting.json", target="a4")  # dropped after the run: still in the handoff

    doc = status_json(handoff, "--failures", "10")
    assert set(doc) >= {"handoff", "files", "running", "pid", "live", "state", "state_note", "failures",
                        "last_run"}
    assert doc["handoff"] == str(handoff)
    assert doc["files"] == {"handoff": 1, "processed": 2, "failed": 2}  # error logs, notes.txt not counted
    assert doc["state"] == {"claimed": 0, "success": 2, "failed": 2, "skipped": 0}
    assert doc["running"] is False and doc["pid"] is None and doc["live"] is None
    names = {f["name"]: f for f in doc["failures"]}
    assert set(names) == {"intent-boom.json", "intent-bad.json"}
    assert names["intent-boom.json"]["exit_code"] == 3
    assert "replicas" in names["intent-bad.json"]["message"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", names["intent-bad.json"]["processed_at"])
    last = doc["last_run"]
    assert (last["processed"], last["skipped"], last["failed"]) == (2, 0, 2)
    assert last["finished_at"].endswith("Z")

    assert len(status_json(handoff, "--failures", "1")["failures"]) == 1

    r = run_cli("status", "--handoff", str(handoff))
    assert r.returncode == 0, r.stderr
    assert "not running" in r.stdout
    assert "handoff 1" in r.stdout and "processed 2" in r.stdout and "failed 2" in r.stdout
    assert "intent-boom.json" in r.stdout and "intent-bad.json" in r.stdout
    assert "last run  processed 2, skipped 0, failed 2" in r.stdout


def test_status_without_state_and_handoff_from_env(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    write_intent(fresh, "intent-x.json")
    doc = status_json(fresh)
    assert doc["state"] is None and doc["state_note"] == "no state yet"
    assert doc["files"]["handoff"] == 1 and doc["failures"] == [] and doc["last_run"] is None
    assert not (fresh / ".conductor").exists()  # status creates nothing

    r = run_cli("status", env={"CONDUCTOR_HANDOFF": str(fresh)})
    assert r.returncode == 0, r.stderr
    assert str(fresh) in r.stdout and "no state yet" in r.stdout

    r = run_cli("status", env={"CONDUCTOR_HANDOFF": str(fresh), "CONDUCTOR_TIMEOUT": "soon"})
    assert r.returncode == 2 and "CONDUCTOR_TIMEOUT" in r.stderr


@pytest.mark.timeout(90)
def test_status_of_a_running_loop_and_state_writes_refused(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    with LoopProcess(handoff, out_dir, "--workers", "1") as loop:
        loop.ready()

        def live() -> dict[str, Any] | None:
            doc = status_json(handoff)
            return doc if doc["live"] is not None else None

        doc = status_json(handoff)
        assert doc["running"] is True and doc["pid"] == loop.proc.pid
        doc = wait_for(live, 20, interval=0.2, what="live figures in status")
        live_fig = doc["live"]
        assert live_fig["pid"] == loop.proc.pid
        assert live_fig["workers"] == 1 and live_fig["queue"] == 0
        assert 0 <= live_fig["age_seconds"] < 20
        r = run_cli("status", "--handoff", str(handoff))
        assert f"running (pid {loop.proc.pid})" in r.stdout and "queue 0" in r.stdout

        # the loop keeps working after being probed: the lock was not kept
        write_intent(handoff, "intent-live.json")
        wait_for(lambda: (handoff / "processed" / "intent-live.json").exists(), 30, what="intent processed")

        go = tmp_path / "go.json"
        go.write_text(json.dumps({"version": "1.0", "states": {}}))
        r = run_cli("state", "import", "--handoff", str(handoff), str(go))
        assert r.returncode == 1 and "running" in r.stderr and str(loop.proc.pid) in r.stderr
        r = run_cli("state", "prune", "--handoff", str(handoff))
        assert r.returncode == 1 and "running" in r.stderr
        r = run_cli("state", "export", "--handoff", str(handoff))  # reading is fine
        assert r.returncode == 0 and str(handoff / "intent-live.json") in json.loads(r.stdout)["states"]

        assert loop.stop() == 0
    doc = status_json(handoff)
    assert doc["running"] is False and doc["live"] is None
    assert doc["last_run"]["processed"] == 1


# ---------------------------------------------------------------------------------- retry


def test_retry_then_succeed_is_never_deduped(handoff: Path, out_dir: Path, fake_porch: Path,
                                             porch_log: Path) -> None:
    write_intent(handoff, "intent-a.json")
    rc = run_once(handoff, out_dir, fake_porch, env={"CONDUCTOR_FAKEPORCH_FAIL_MATCH": "intent-a"}, log=porch_log)
    assert rc == 8
    assert statuses(handoff)["intent-a.json"]["status"] == "failed"
    assert (handoff / "failed" / "intent-a.json.error.log").exists()

    r = run_cli("retry", "--handoff", str(handoff), "intent-a.json")
    assert r.returncode == 0, r.stderr
    assert (handoff / "intent-a.json").exists()
    assert not (handoff / "failed" / "intent-a.json").exists()
    assert not (handoff / "failed" / "intent-a.json.error.log").exists()

    assert run_once(handoff, out_dir, fake_porch, log=porch_log) == 0  # the failing knob is gone
    st = statuses(handoff)["intent-a.json"]
    assert st["status"] == "success", st
    assert (handoff / "processed" / "intent-a.json").exists()
    assert len(read_calls(porch_log)) == 2  # porch really ran again: not skipped as a duplicate
    assert status_json(handoff)["state"]["success"] == 1


def test_retry_of_content_that_already_succeeded_gets_a_fresh_name(handoff: Path, out_dir: Path,
                                                                   fake_porch: Path, porch_log: Path) -> None:
    body = intent_body(target="dup")
    write_intent(handoff, "intent-a.json", body)
    assert run_once(handoff, out_dir, fake_porch, env={"CONDUCTOR_FAKEPORCH_FAIL_MATCH": "intent-a"}) == 8
    write_intent(handoff, "intent-a.json", body)  # the same content again: succeeds this time
    assert run_once(handoff, out_dir, fake_porch, log=porch_log) == 0
    assert len(read_calls(porch_log)) == 1

    r = run_cli("retry", "--handoff", str(handoff), "failed/intent-a.json")
    assert r.returncode == 0, r.stderr
    back = [p.name for p in handoff.glob("intent-*.json")]
    assert len(back) == 1 and SUFFIXED.match(back[0]), back  # intent-a.json would be skipped as a duplicate
    assert run_once(handoff, out_dir, fake_porch, log=porch_log) == 0
    assert len(read_calls(porch_log)) == 2
    assert statuses(handoff)[back[0]]["status"] == "success"


def test_retry_suffixed_names_by_name(handoff: Path, out_dir: Path, fake_porch: Path) -> None:
    fail = {"CONDUCTOR_FAKEPORCH_FAIL_MATCH": "intent-a"}
    write_intent(handoff, "intent-a.json", target="v1")
    assert run_once(handoff, out_dir, fake_porch, env=fail) == 8
    write_intent(handoff, "intent-a.json", target="v2")
    assert run_once(handoff, out_dir, fake_porch, env=fail) == 8
    names = failed_files(handoff)
    assert len(names) == 2 and "intent-a.json" in names
    suffixed = next(n for n in names if n != "intent-a.json")
    assert SUFFIXED.match(suffixed)
    assert (handoff / "failed" / (suffixed + ".error.log")).exists()

    # The suffixed one first: its original name is free, so it gets intent-a.json back.
    r = run_cli("retry", "--handoff", str(handoff), f"failed/{suffixed}")
    assert r.returncode == 0, r.stderr
    assert json.loads((handoff / "intent-a.json").read_text())["target"] == "v2"
    assert not (handoff / "failed" / (suffixed + ".error.log")).exists()

    # Now intent-a.json is taken in the handoff: the other one is moved in under a new name, nothing overwritten.
    r = run_cli("retry", "--handoff", str(handoff), "intent-a.json")
    assert r.returncode == 0, r.stderr
    back = sorted(p.name for p in handoff.glob("intent-a*.json"))
    assert len(back) == 2 and "intent-a.json" in back
    other = next(n for n in back if n != "intent-a.json")
    assert SUFFIXED.match(other)
    assert json.loads((handoff / other).read_text())["target"] == "v1"
    assert failed_files(handoff) == []

    assert run_once(handoff, out_dir, fake_porch) == 0
    assert sorted(p.name for p in (handoff / "processed").iterdir()) == sorted(back)


def test_retry_all_failed_unknown_and_nothing(handoff: Path, out_dir: Path, fake_porch: Path) -> None:
    for n in ("intent-f1.json", "intent-f2.json", "intent-f3.json"):
        write_intent(handoff, n, target=n[7:9])
    write_intent(handoff, "intent-good.json", target="good")
    assert run_once(handoff, out_dir, fake_porch, env={"CONDUCTOR_FAKEPORCH_FAIL_MATCH": "intent-f"}) == 8
    assert failed_files(handoff) == ["intent-f1.json", "intent-f2.json", "intent-f3.json"]

    r = run_cli("retry", "--handoff", str(handoff), "intent-f1.json", "intent-nope.json")
    assert r.returncode == 1
    assert "intent-nope.json" in r.stderr
    assert (handoff / "intent-f1.json").exists()  # the known one was still retried

    r = run_cli("retry", "--handoff", str(handoff), "--all-failed")
    assert r.returncode == 0, r.stderr
    assert failed_files(handoff) == []
    assert list((handoff / "failed").iterdir()) == []  # error logs gone too
    assert sorted(p.name for p in handoff.glob("intent-f*.json")) == ["intent-f1.json", "intent-f2.json",
                                                                       "intent-f3.json"]

    r = run_cli("retry", "--handoff", str(handoff), "--all-failed")
    assert r.returncode == 0 and "nothing to retry" in r.stdout
    r = run_cli("retry", "--handoff", str(handoff))
    assert r.returncode == 2
    r = run_cli("retry", "--handoff", str(handoff), "--all-failed", "intent-f1.json")
    assert r.returncode == 2

    assert run_once(handoff, out_dir, fake_porch) == 0
    assert {k: v["status"] for k, v in statuses(handoff).items()} == dict.fromkeys(
        ["intent-f1.json", "intent-f2.json", "intent-f3.json", "intent-good.json"], "success")


@pytest.mark.timeout(90)
def test_retry_while_a_loop_runs(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-r.json", replicas=500)  # invalid
    assert run_once(handoff, out_dir) == 8
    # The operator fixes the failed file in place, then retries it into the running loop.
    write_intent(handoff / "failed", "intent-r.json", replicas=5)
    with LoopProcess(handoff, out_dir, "--workers", "1", metrics=True) as loop:
        loop.ready()
        r = run_cli("retry", "--handoff", str(handoff), "intent-r.json")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: (handoff / "processed" / "intent-r.json").exists(), 30, what="retried intent processed")
        assert loop.stop() == 0
    assert statuses(handoff)["intent-r.json"]["status"] == "success"


# ---------------------------------------------------------------------------------- state


def test_state_export_import_prune(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    write_intent(handoff, "intent-s1.json", target="s1")
    write_intent(handoff, "intent-s2.json", replicas=0)  # invalid
    assert run_once(handoff, out_dir) == 8

    r = run_cli("state", "export", "--handoff", str(handoff))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["version"] == "1.0" and doc["saved_at"].endswith("Z")
    s1, s2 = str(handoff / "intent-s1.json"), str(handoff / "intent-s2.json")
    assert set(doc["states"]) == {s1, s2}
    e1 = doc["states"][s1]
    assert set(e1) == {"file_path", "sha256", "size", "processed_at", "status"}
    assert e1["file_path"] == s1 and e1["status"] == "processed" and e1["size"] > 0
    assert re.fullmatch(r"[0-9a-f]{64}", e1["sha256"])
    assert e1["sha256"] == statuses(handoff)["intent-s1.json"]["sha256"]
    assert doc["states"][s2]["status"] == "failed"

    target = tmp_path / "export" / "state.json"
    target.parent.mkdir()
    r = run_cli("state", "export", "--handoff", str(handoff), "-o", str(target))
    assert r.returncode == 0, r.stderr
    assert json.loads(target.read_text())["states"] == doc["states"]
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]  # no temp left behind

    fresh = tmp_path / "fresh"
    r = run_cli("state", "import", "--handoff", str(fresh), str(target))
    assert r.returncode == 0, r.stderr
    assert "imported 2 entries" in r.stdout
    assert status_json(fresh)["state"] == {"claimed": 0, "success": 1, "failed": 1, "skipped": 0}
    r = run_cli("state", "import", "--handoff", str(fresh), str(target))
    assert r.returncode == 0 and "imported 0 entries" in r.stdout  # rows already present are kept

    r = run_cli("state", "import", "--handoff", str(fresh), str(tmp_path / "missing.json"))
    assert r.returncode == 1
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2]")
    r = run_cli("state", "import", "--handoff", str(fresh), str(junk))
    assert r.returncode == 1 and "not a Go state file" in r.stderr

    # prune: one old row and one new one, in Go format
    old_new = tmp_path / "old-new.json"
    old_new.write_text(json.dumps({"version": "1.0", "saved_at": "2026-01-01T00:00:00Z", "states": {
        "/h/intent-old.json": {"file_path": "/h/intent-old.json", "sha256": "a" * 64, "size": 1,
                               "processed_at": "2020-01-01T00:00:00Z", "status": "processed"},
        "/h/intent-new.json": {"file_path": "/h/intent-new.json", "sha256": "b" * 64, "size": 1,
                               "processed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "status": "processed"}}}))
    other = tmp_path / "other"
    assert run_cli("state", "import", "--handoff", str(other), str(old_new)).returncode == 0
    r = run_cli("state", "prune", "--handoff", str(other))  # default 7d
    assert r.returncode == 0 and "pruned 1 entries" in r.stdout, r.stdout + r.stderr
    assert set(json.loads(run_cli("state", "export", "--handoff", str(other)).stdout)["states"]) == {
        "/h/intent-new.json"}
    r = run_cli("state", "prune", "--handoff", str(other), "--older-than", "0s")
    assert r.returncode == 0 and "pruned 1 entries" in r.stdout
    assert status_json(other)["state"]["success"] == 0

    r = run_cli("state", "prune", "--handoff", str(other), "--older-than", "soon")
    assert r.returncode == 2 and "duration" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("state", "prune", "--handoff", str(empty))
    assert r.returncode == 0 and "no state" in r.stdout
    r = run_cli("state", "export", "--handoff", str(empty))
    assert r.returncode == 0 and json.loads(r.stdout)["states"] == {}


def test_state_export_to_a_file_is_all_or_nothing(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    write_intent(handoff, "intent-e1.json", target="e1")
    assert run_once(handoff, out_dir) == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    target = dest / "backup.json"
    target.write_text("the previous backup")
    r = run_cli("state", "export", "--handoff", str(handoff), "-o", str(target))
    assert r.returncode == 0 and "exported 1 entries" in r.stderr, r.stderr
    assert r.stdout == ""
    assert json.loads(target.read_text())["states"].keys() == {str(handoff / "intent-e1.json")}
    shown = run_cli("state", "export", "--handoff", str(handoff)).stdout
    assert shown.splitlines()[2:] == target.read_text().splitlines()[2:]  # what stdout shows, saved_at aside
    killed = subprocess.run([sys.executable, "-c", "import os, signal, sys; from conductor_loop import _core; "
                             "f = _core.AtomicFile(sys.argv[1]); f.write(b'{'); os.kill(os.getpid(), signal.SIGKILL)",
                             str(target)], check=False)
    assert killed.returncode == -signal.SIGKILL and len(list(dest.iterdir())) == 2  # an export killed half-way
    r = run_cli("state", "export", "--handoff", str(handoff), "-o", str(target))
    assert r.returncode == 0 and [p.name for p in dest.iterdir()] == ["backup.json"]  # its temp file removed
    blocked = dest / "taken"
    blocked.mkdir()
    (blocked / "keep").write_text("k")
    r = run_cli("state", "export", "--handoff", str(handoff), "-o", str(blocked))
    assert r.returncode == 1 and f"cannot write {blocked}" in r.stderr, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["backup.json", "taken"]  # no temp left behind
    assert [p.name for p in blocked.iterdir()] == ["keep"]


# ---------------------------------------------------------------------------------- config show


def test_config_show_precedence_and_sources(tmp_path: Path) -> None:
    cfg = tmp_path / "conductor.toml"
    cfg.write_text('timeout = "10s"\ndebounce = "2s"\nretries = 5\nmax-workers = 3\n')
    env = {"CONDUCTOR_CONFIG": str(cfg), "CONDUCTOR_TIMEOUT": "20s", "CONDUCTOR_DEBOUNCE": "250ms"}
    r = run_cli("config", "show", "--timeout", "40s", "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["timeout"] == {"value": "40s", "source": "flag"}
    assert doc["debounce"] == {"value": "250ms", "source": "env CONDUCTOR_DEBOUNCE"}
    assert doc["retries"] == {"value": "5", "source": f"file {cfg}"}
    assert doc["max_workers"] == {"value": "3", "source": f"file {cfg}"}
    assert doc["mode"] == {"value": "direct", "source": "default"}
    assert doc["config"]["value"] == str(cfg)

    r = run_cli("config", "show", "--config", str(cfg), "--handoff", "/srv/h", env={"CONDUCTOR_TIMEOUT": "20s"})
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert rows["timeout"][1:] == ["20s", "env", "CONDUCTOR_TIMEOUT"]
    assert rows["handoff"][1:] == ["/srv/h", "flag"]
    assert rows["retries"][1:] == ["5", "file", str(cfg)]

    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 1\n")
    r = run_cli("config", "show", "--config", str(bad))
    assert r.returncode == 2 and "colour" in r.stderr
    r = run_cli("config", "show", "--workers", "many")
    assert r.returncode == 2 and "workers" in r.stderr


def test_every_command_help_has_an_example() -> None:
    for cmd in (["status"], ["retry"], ["state"], ["state", "export"], ["state", "import"], ["state", "prune"],
                ["config"], ["config", "show"]):
        r = run_cli(*cmd, "--help")
        assert r.returncode == 0, (cmd, r.stderr)
        assert "conductor-loop " + " ".join(cmd[:1]) in r.stdout.split("Example", 1)[1], cmd
