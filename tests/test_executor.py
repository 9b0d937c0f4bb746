"""Executors with real processes (tests/fakeporch.py), real files and the real entry-point machinery."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conductor_loop.executor import (
    TAIL_BYTES,
    BuiltinExecutor,
    ExecRequest,
    ExecResult,
    ExternalExecutor,
    check_porch_path,
    load_executor,
)
from conductor_loop.validate import Intent, parse_intent
from conftest import install_plugin
from needs import missing, need_tool

pytestmark = pytest.mark.timeout(60)


def make_intent(**changes: Any) -> Intent:
    data: dict[str, Any] = {"intent_type": "scaling", "target": "odu", "namespace": "oran", "replicas": 2}
    data.update(changes)
    return parse_intent(json.dumps(data).encode())


@pytest.fixture
def intent_file(tmp_path: Path) -> Path:
    path = tmp_path / "handoff" / "intent-a.json"
    path.parent.mkdir()
    body = {"intent_type": "scaling", "target": "odu", "namespace": "oran", "replicas": 2}
    path.write_text(json.dumps(body))
    return path


@pytest.fixture(autouse=True)
def fake_env(monkeypatch: pytest.MonkeyPatch, porch_log: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_LOG", str(porch_log))
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_PIDFILE", str(tmp_path / "pids"))
    monkeypatch.setenv("LANG", "C.UTF-8")  # so the fake porch's Python does not add LC_CTYPE itself
    monkeypatch.delenv("CONDUCTOR_FAKEPORCH_MODE", raising=False)
    monkeypatch.delenv("CONDUCTOR_FAKEPORCH_FAIL_MATCH", raising=False)


def request(intent_file: Path, out: Path, **over: Any) -> ExecRequest:
    fields: dict[str, Any] = {
        "intent_path": str(intent_file),
        "out_dir": str(out),
        "structured": False,
        "intent": make_intent(),
        "sha256": "ab" * 32,
        "attempt": 1,
        "timeout": 20.0,
    }
    fields.update(over)
    return ExecRequest(**fields)


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def assert_reaped(log: Path) -> None:
    """Every porch the log names was reaped: an unreaped child would still be in /proc as a zombie."""
    pids = [call["pid"] for call in calls(log)]
    assert pids
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"porch {pid} was not reaped"


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def leftover_pids(tmp_path: Path) -> list[int]:
    path = tmp_path / "pids"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


# --- success, argv, environment ------------------------------------------------------------------


@pytest.mark.parametrize("structured", [False, True])
def test_exact_argv_and_success(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path, structured: bool
) -> None:
    out = tmp_path / "out"
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, out, structured=structured))
    assert result.ok, result.message
    assert (result.exit_code, result.signal, result.timed_out, result.retryable) == (0, None, False, False)
    assert result.output_dir == str(out)
    assert "wrote intent-a.json.out" in result.stdout_tail
    assert (out / "intent-a.json.out").read_bytes() == intent_file.read_bytes()
    expected = [str(fake_porch), "-intent", str(intent_file), "-out", str(out)]
    if structured:
        expected.append("-structured")
    [call] = calls(porch_log)
    assert call["argv"] == expected
    assert call["pid"] == call["pgid"] == call["sid"], "porch must lead its own session and group"
    assert call["stdin"] == "/dev/null"
    assert result.duration_ms > 0
    assert_reaped(porch_log)


def test_clean_environment(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
    monkeypatch.setenv("CONDUCTOR_CUSTOM", "kept")
    monkeypatch.setenv("CONDUCTOR_INTENT_SHA256", "stale")
    monkeypatch.setenv("HOME", "/home/porch")
    req = request(
        intent_file,
        tmp_path / "out",
        intent=make_intent(correlation_id="corr-42"),
        attempt=3,
        env_extra={"CONDUCTOR_WORKER": "w7"},
    )
    assert ExternalExecutor(str(fake_porch)).execute(req).ok
    env = calls(porch_log)[0]["env"]
    assert "SECRET_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert set(env) - {"PATH", "HOME", "LANG"} == {k for k in env if k.startswith("CONDUCTOR_")}
    assert env["PATH"] == os.environ["PATH"]
    assert env["HOME"] == "/home/porch"
    assert env["LANG"] == "C.UTF-8"
    assert env["CONDUCTOR_CUSTOM"] == "kept"
    assert env["CONDUCTOR_INTENT_SHA256"] == "ab" * 32
    assert env["CONDUCTOR_ATTEMPT"] == "3"
    assert env["CONDUCTOR_CORRELATION_ID"] == "corr-42"
    assert env["CONDUCTOR_WORKER"] == "w7"


def test_no_correlation_id_no_variable(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_CORRELATION_ID", "inherited-must-not-leak")
    assert ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out")).ok
    assert "CONDUCTOR_CORRELATION_ID" not in calls(porch_log)[0]["env"]


def test_out_dir_created(fake_porch: Path, intent_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "out"
    assert ExternalExecutor(str(fake_porch)).execute(request(intent_file, out)).ok
    assert (out / "intent-a.json.out").exists()


# --- failures ------------------------------------------------------------------------------------


def test_exit_code_is_final_failure(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_MODE", "fail")
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out"))
    assert not result.ok and not result.retryable and not result.timed_out
    assert (result.exit_code, result.signal) == (3, None)
    assert result.message.startswith("porch exited with code 3: fakeporch: failing as asked")
    assert "some output before failing" in result.stdout_tail
    assert_reaped(porch_log)


def test_fail_match(
    fake_porch: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_FAIL_MATCH", "intent-b")
    ex = ExternalExecutor(str(fake_porch))
    assert ex.execute(request(intent_file, tmp_path / "out")).ok
    other = intent_file.with_name("intent-b.json")
    other.write_bytes(intent_file.read_bytes())
    assert ex.execute(request(other, tmp_path / "out")).exit_code == 3


def test_death_by_signal_is_failure(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_MODE", "signal")
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out"))
    assert not result.ok and not result.retryable
    assert (result.exit_code, result.signal) == (None, signal.SIGKILL)
    assert "killed by signal 9 (SIGKILL)" in result.message
    assert_reaped(porch_log)


def test_timeout_kills_the_whole_group(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_MODE", "family")
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out", timeout=1.5))
    assert result.timed_out and result.retryable and not result.ok
    assert result.signal == signal.SIGTERM
    assert "timed out after 1.5s" in result.message
    [grandchild] = leftover_pids(tmp_path)
    assert wait_gone(grandchild), "the grandchild survived the timeout"
    assert_reaped(porch_log)


def test_timeout_sigkill_after_sigterm_ignored(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_MODE", "stubborn")
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out", timeout=1.0))
    assert result.timed_out and result.retryable
    assert result.signal == signal.SIGKILL
    assert_reaped(porch_log)


def test_output_tails_bounded(
    fake_porch: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_MODE", "spam")
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out"))
    assert result.ok, result.message
    assert 0 < len(result.stdout_tail.encode()) <= TAIL_BYTES
    assert 0 < len(result.stderr_tail.encode()) <= TAIL_BYTES
    assert result.stdout_tail.endswith("END-OF-STDOUT\nfakeporch: wrote intent-a.json.out\n")
    assert result.stderr_tail.endswith("END-OF-STDERR\n")
    assert len(result.stderr_tail) > TAIL_BYTES - 2048  # really the last 64 KiB, not a few lines


def test_daemon_holding_pipes_does_not_hang_us(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_MODE", "daemon")
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out", timeout=30))
    assert result.ok and not result.timed_out, result.message
    [daemon] = leftover_pids(tmp_path)
    assert wait_gone(daemon), "the daemon left in porch's group survived the call"
    assert_reaped(porch_log)


@pytest.mark.parametrize("mode", ["ok", "daemon", "fail"])
def test_without_pidfd(
    fake_porch: Path,
    porch_log: Path,
    intent_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """Kernels or Pythons without pidfd_open: the waitid(WNOWAIT) polling path gives the same results."""
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    monkeypatch.setenv("CONDUCTOR_FAKEPORCH_MODE", mode)
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out"))
    assert result.ok == (mode != "fail")
    assert result.exit_code == (3 if mode == "fail" else 0)
    for pid in leftover_pids(tmp_path):
        assert wait_gone(pid)
    assert_reaped(porch_log)


def test_missing_porch_is_retryable(fake_porch: Path, intent_file: Path, tmp_path: Path) -> None:
    ex = ExternalExecutor(check_porch_path(str(fake_porch)))
    fake_porch.unlink()  # vanished after the start-up check
    result = ex.execute(request(intent_file, tmp_path / "out"))
    assert not result.ok and result.retryable
    assert result.message.startswith("could not start porch") and "No such file" in result.message


def test_not_executable_is_retryable(fake_porch: Path, intent_file: Path, tmp_path: Path) -> None:
    fake_porch.chmod(0o644)
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, tmp_path / "out"))
    assert not result.ok and result.retryable
    assert "Permission denied" in result.message


def test_unusable_out_dir_is_retryable(
    fake_porch: Path, porch_log: Path, intent_file: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    result = ExternalExecutor(str(fake_porch)).execute(request(intent_file, blocker / "out"))
    assert not result.ok and result.retryable
    assert "out dir" in result.message
    assert calls(porch_log) == []  # porch was not run


# --- built-in ------------------------------------------------------------------------------------


def test_builtin_executor(intent_file: Path, tmp_path: Path) -> None:
    ex = BuiltinExecutor("structured")
    assert (ex.name, ex.mode, ex.porch_path) == ("builtin", "structured", "builtin")
    result = ex.execute(request(intent_file, tmp_path / "out", structured=True))
    assert result.ok and result.exit_code == 0
    assert result.output_dir == str(tmp_path / "out" / "oran" / "odu-scaling")
    assert (Path(result.output_dir) / "README.md").exists()


def test_builtin_executor_write_error(intent_file: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result = BuiltinExecutor().execute(request(intent_file, blocker / "out"))
    assert not result.ok and not result.retryable  # ENOTDIR: a configuration fault, not transient
    assert "could not write the package" in result.message


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """``directory`` refuses new entries: mode 0500, or for root (who ignores modes, as in CI) the immutable
    flag (``chattr +i``: EPERM even for root)."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)
        return
    chattr = need_tool("chattr", "e2fsprogs")
    if subprocess.run([chattr, "+i", str(directory)], capture_output=True, check=False).returncode != 0:
        missing(f"chattr +i is refused on {directory}'s filesystem")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)


def test_builtin_executor_permission_denied_is_retryable(intent_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    with unwritable(out):
        result = BuiltinExecutor().execute(request(intent_file, out))
    assert not result.ok and result.retryable


# --- check_porch_path ----------------------------------------------------------------------------


def test_check_porch_path_accepts(fake_porch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_porch_path("builtin") == "builtin"
    assert check_porch_path(str(fake_porch)) == str(fake_porch)
    monkeypatch.chdir(fake_porch.parent)
    assert check_porch_path("./fakeporch") == str(fake_porch)
    monkeypatch.setenv("PATH", f"/nonexistent:{fake_porch.parent}")
    assert check_porch_path("fakeporch") == str(fake_porch)


@pytest.mark.parametrize(
    "value",
    ["porch;rm -rf /", "porch|x", "a&b", "$(porch)", "`porch`", "porch>out", "po*ch", "por ch", "porch\n",
     "~/porch", "'porch'", '"porch"', "porch\\x", "{porch}", "porch!"],
)
def test_check_porch_path_rejects_metacharacters(value: str) -> None:
    with pytest.raises(ValueError, match="shell metacharacters") as info:
        check_porch_path(value)
    assert repr(value) in str(info.value) and "\n" not in str(info.value)


def test_check_porch_path_rejects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="is a directory"):
        check_porch_path(str(tmp_path))
    with pytest.raises(ValueError, match="no such file"):
        check_porch_path(str(tmp_path / "missing"))
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    with pytest.raises(ValueError, match="not executable"):  # even for root: no x bit at all
        check_porch_path(str(plain))
    with pytest.raises(ValueError, match="not a regular file"):
        check_porch_path("/dev/null")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ValueError, match="not found in PATH"):
        check_porch_path("porch-nowhere")
    with pytest.raises(ValueError, match="empty"):
        check_porch_path("")


# --- load_executor and entry points --------------------------------------------------------------


def test_load_executor_builtin_and_external(fake_porch: Path) -> None:
    builtin = load_executor("builtin", "direct")
    assert isinstance(builtin, BuiltinExecutor) and builtin.mode == "direct"
    external = load_executor(str(fake_porch), "structured")
    assert isinstance(external, ExternalExecutor)
    assert (external.porch_path, external.mode) == (str(fake_porch), "structured")
    for ex in (builtin, external):
        clone = pickle.loads(pickle.dumps(ex))
        assert (type(clone), clone.mode, clone.porch_path) == (type(ex), ex.mode, ex.porch_path)


def test_load_executor_rejects(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--mode"):
        load_executor("builtin", "fancy")
    with pytest.raises(ValueError, match="no such file"):
        load_executor(str(tmp_path / "nope"), "direct")
    with pytest.raises(ValueError, match="not found in PATH"):
        load_executor("no-such-executor-or-binary", "direct")


PLUGIN = '''
from conductor_loop.executor import ExecRequest, ExecResult


class EchoExecutor:
    name = "echo"
    porch_path = "echo-plugin"

    def __init__(self, mode):
        self.mode = mode

    def execute(self, req: ExecRequest) -> ExecResult:
        return ExecResult(ok=True, message=f"echo {req.intent.target} {self.mode}", exit_code=0, signal=None,
                          timed_out=False, retryable=False, output_dir=req.out_dir, stdout_tail="",
                          stderr_tail="", duration_ms=0.0)


def make(*, mode):
    return EchoExecutor(mode)
'''


def test_entry_point_executor(tmp_path: Path, intent_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = install_plugin(tmp_path / "site", "echo_executor_plugin", PLUGIN, "echo")
    monkeypatch.syspath_prepend(str(site))
    try:
        ex = load_executor("echo", "structured")
        assert (ex.name, ex.mode, ex.porch_path) == ("echo", "structured", "echo-plugin")
        result = ex.execute(request(intent_file, tmp_path / "out"))
        assert result.ok and result.message == "echo odu structured"
    finally:
        sys.modules.pop("echo_executor_plugin", None)


def test_spawn_errno_classes_are_retryable() -> None:
    # The retryable set covers the start-up failures the spec names.
    from conductor_loop.executor import RETRYABLE_ERRNOS

    for code in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.EAGAIN, errno.ENOSPC, errno.EDQUOT):
        assert code in RETRYABLE_ERRNOS


def test_result_dataclass_fields() -> None:
    assert [f for f in ExecResult.__dataclass_fields__] == [
        "ok", "message", "exit_code", "signal", "timed_out", "retryable", "output_dir",
        "stdout_tail", "stderr_tail", "duration_ms",
    ]
