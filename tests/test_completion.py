"""Shell completion (click's): the scripts the README tells operators to install, and that they complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from needs import need_tool

BIN = Path(sys.executable).parent / "conductor-loop"

pytestmark = pytest.mark.timeout(120)


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert BIN.exists(), f"{BIN}: console script missing (make install)"
    return subprocess.run([str(BIN)], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **env})


def test_bash_completion_script_is_produced() -> None:
    proc = _run({"_CONDUCTOR_LOOP_COMPLETE": "bash_source"})
    assert proc.returncode == 0, proc.stderr
    assert "_conductor_loop_completion()" in proc.stdout
    assert "complete -o nosort -F _conductor_loop_completion conductor-loop" in proc.stdout
    bash = need_tool("bash", "apt-get install bash")  # the script is valid bash
    check = subprocess.run([bash, "-n"], input=proc.stdout, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef conductor-loop"),
                                                ("fish", "complete --no-files --command conductor-loop")])
def test_zsh_and_fish_scripts_are_produced(shell: str, marker: str) -> None:
    proc = _run({"_CONDUCTOR_LOOP_COMPLETE": f"{shell}_source"})
    assert proc.returncode == 0 and marker in proc.stdout, proc.stdout[:500] + proc.stderr


def test_bash_completes_commands_and_options() -> None:
    words = _run({"_CONDUCTOR_LOOP_COMPLETE": "bash_complete", "COMP_WORDS": "conductor-loop sta",
                  "COMP_CWORD": "1"})
    assert words.stdout.split() == ["plain,state", "plain,status"], words.stdout
    opts = _run({"_CONDUCTOR_LOOP_COMPLETE": "bash_complete", "COMP_WORDS": "conductor-loop status --wa",
                 "COMP_CWORD": "2"})
    assert "plain,--watch" in opts.stdout.split(), opts.stdout
