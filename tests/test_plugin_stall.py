"""A third-party executor through the entry-point group, in real worker processes; a hung worker is
killed after --timeout + 10 s of no heartbeat and its intent fails without the pool deadlocking."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import install_plugin, run_cli, statuses, write_intent
from loopproc import LoopProcess, wait_for

PLUGIN = '''
import os, time
from conductor_loop.executor import ExecResult


class PluginExecutor:
    name = "plugin"
    porch_path = "plugin-executor"

    def __init__(self, mode):
        self.mode = mode

    def execute(self, req):
        if "hang" in req.intent_path:
            time.sleep(3600)  # a wedged executor: only the heartbeat watchdog gets it out
        return ExecResult(ok=True, message="plugin did it", exit_code=0, signal=None, timed_out=False,
                          retryable=False, output_dir=req.out_dir, stdout_tail="", stderr_tail="",
                          duration_ms=0.0)


def make(*, mode):
    return PluginExecutor(mode)
'''


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    site = install_plugin(tmp_path / "site", "plugin_exec", PLUGIN, "plugin")
    return {"PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.timeout(120)
def test_registered_executor_runs_from_the_cli(handoff: Path, out_dir: Path, plugin_env: dict[str, str]) -> None:
    write_intent(handoff, "intent-a.json")
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", "plugin",
                "--debounce", "50ms", env=plugin_env)
    assert r.returncode == 0, r.stderr
    doc = statuses(handoff)["intent-a.json"]
    assert doc["status"] == "success" and doc["message"] == "plugin did it"
    assert doc["porch_path"] == "plugin-executor"
    assert run_cli("run", "--once", "--handoff", str(handoff), "--porch", "nosuchplugin").returncode == 2


@pytest.mark.timeout(180)
def test_wedged_worker_is_killed_replaced_and_its_intent_fails(handoff: Path, out_dir: Path,
                                                               plugin_env: dict[str, str]) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", "plugin", "--workers", "1",
                     "--timeout", "1s", "--retries", "0", env=plugin_env) as loop:
        loop.ready()
        t0 = time.monotonic()
        write_intent(handoff, "intent-hang.json")
        wait_for(lambda: (handoff / "failed" / "intent-hang.json").exists(), timeout=60, what="hung intent failed")
        assert time.monotonic() - t0 >= 10  # not before --timeout + 10 s without a heartbeat
        exits = loop.wait_event("worker.exit")
        assert "heartbeat" in exits[0]["reason"]
        loop.wait_event("worker.start", count=2)  # replaced
        write_intent(handoff, "intent-ok.json")  # the pool still works
        wait_for(lambda: (handoff / "processed" / "intent-ok.json").exists(), timeout=30, what="next intent")
        assert loop.stop() == 0
    doc = statuses(handoff)["intent-hang.json"]
    assert doc["status"] == "failed" and "heartbeat" in doc["message"]
    assert (handoff / "failed" / "intent-hang.json.error.log").exists()


BOOT_FAIL = '''
import multiprocessing


def make(*, mode):
    if multiprocessing.current_process().name.startswith("conductor-worker"):
        raise RuntimeError("this executor cannot start in a worker")
    from conductor_loop.executor import BuiltinExecutor
    return BuiltinExecutor(mode)
'''


@pytest.mark.timeout(120)
def test_workers_that_cannot_boot_stop_the_loop_instead_of_respawning_forever(
    handoff: Path, out_dir: Path, tmp_path: Path
) -> None:
    site = install_plugin(tmp_path / "site2", "bootfail_exec", BOOT_FAIL, "bootfail")
    write_intent(handoff, "intent-a.json")
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", "bootfail",
                env={"PYTHONPATH": str(site)})
    assert r.returncode == 1, r.stderr
    assert "workers die while starting" in r.stderr
    assert (handoff / "intent-a.json").exists()  # nothing lost, nothing filed
