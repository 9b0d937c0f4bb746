"""The one name rule (README, "Files and directories"): temp names are never taken, in either mode.

With ``--pattern 'intent-*'`` (or ``'*'``) a producer's ``intent-a.json.tmp`` matches the pattern, but it
is a temp name: the loop must leave it alone, so the producer's rename into ``intent-a.json`` works.
Watch mode and once mode apply the same rule (the watcher's events and the scan are filtered alike).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conductor_loop.layout import TEMP_SUFFIXES, Layout, NameRule
from conftest import intent_body, run_cli, statuses
from loopproc import LoopProcess, wait_for

TEMP_NAMES = [f"intent-a.json{suffix}" for suffix in TEMP_SUFFIXES]


@pytest.mark.parametrize("pattern", ["intent-*", "*"])
def test_name_rule_rejects_temp_hidden_and_own_names(pattern: str) -> None:
    rule = NameRule([pattern])
    assert rule.is_intent("intent-a.json")
    for name in [*TEMP_NAMES, ".intent-a.json", "processed", "failed", "status", ".conductor", ""]:
        assert not rule.is_intent(name), name
    layout = Layout("/h", (pattern,))
    assert layout.intent_path("/h/intent-a.json")
    assert not layout.intent_path("/h/processed/intent-a.json")
    assert not layout.intent_path("/h/intent-a.json.tmp")


@pytest.mark.parametrize("pattern", ["intent-*", "*"])
def test_once_mode_leaves_temp_names_alone(handoff: Path, out_dir: Path, pattern: str) -> None:
    body = json.dumps(intent_body())
    for name in TEMP_NAMES:
        (handoff / name).write_text(body)
    (handoff / "intent-b.json").write_text(body)
    old = time.time() - 60
    for p in handoff.iterdir():
        os.utime(p, (old, old))
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--pattern", pattern)
    assert r.returncode == 0, r.stderr
    assert "processed 1," in r.stdout
    for name in TEMP_NAMES:
        assert (handoff / name).exists(), name
    assert set(statuses(handoff)) == {"intent-b.json"}


@pytest.mark.parametrize("pattern", ["intent-*", "*"])
def test_watch_mode_never_takes_a_producers_temp_file(handoff: Path, out_dir: Path, pattern: str) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "100ms", "--pattern", pattern) as loop:
        loop.ready()
        tmp = handoff / "intent-a.json.tmp"
        tmp.write_text(json.dumps(intent_body()))  # closed after writing: settles after the debounce
        time.sleep(1.0)  # well past the debounce and a sweep: the loop must not have taken it
        assert tmp.exists()
        os.rename(tmp, handoff / "intent-a.json")  # the producer's rename into place works
        wait_for(lambda: "intent-a.json" in statuses(handoff), what="intent-a.json filed")
        assert loop.stop() == 0
    assert (handoff / "processed" / "intent-a.json").exists()
    assert set(statuses(handoff)) == {"intent-a.json"}
