"""File names that are not UTF-8 never stop the loop: filed in failed/ unread, with the reason (docs/SECURITY.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor_loop.layout import NameRule
from conductor_loop.logs import printable
from conductor_loop.quarantine import REASON
from conftest import VALID, run_cli, statuses, write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(240)

BAD = os.fsdecode(b"intent-\xff\xfe.json")


def _write_bad(handoff: Path) -> Path:
    path = handoff / BAD
    path.write_text(json.dumps(VALID))
    return path


def _check_filed(handoff: Path) -> None:
    assert not (handoff / BAD).exists()
    assert (handoff / "failed" / BAD).read_text() == json.dumps(VALID)  # whole, never rewritten
    log = (handoff / "failed" / (BAD + ".error.log")).read_text()
    assert REASON in log and "intent-\\xff\\xfe.json" in log
    doc = statuses(handoff)["intent-\\xff\\xfe.json"]
    assert doc["status"] == "failed" and doc["message"] == REASON
    assert doc["moved_to"].endswith("failed/intent-\\xff\\xfe.json")


def test_once_mode_files_a_non_utf8_name_and_goes_on(handoff: Path, out_dir: Path) -> None:
    _write_bad(handoff)
    write_intent(handoff, "intent-ok.json")
    for attempt in range(2):  # and again after a restart: never a crash
        r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--log-format", "json")
        assert r.returncode == (8 if attempt == 0 else 0), r.stderr
        assert "Traceback" not in r.stderr
    _check_filed(handoff)
    assert statuses(handoff)["intent-ok.json"]["status"] == "success"
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert all(isinstance(e.get("intent"), (str, type(None))) for e in events)
    r = run_cli("status", "--handoff", str(handoff))
    assert r.returncode == 0 and "Traceback" not in r.stderr
    r = run_cli("run", "--dry-run", "--handoff", str(handoff), "--out", str(out_dir))
    assert r.returncode == 0


def test_watch_mode_files_it_and_stays_healthy(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "100ms") as loop:
        loop.ready()
        _write_bad(handoff)
        write_intent(handoff, "intent-ok.json")
        wait_for(lambda: (handoff / "failed" / BAD).exists(), timeout=60, what="the hostile name filed")
        wait_for(lambda: "intent-ok.json" in statuses(handoff), what="the good one filed")
        assert loop.get("/healthz")[0] == 200
        assert loop.stop() == 0
    _check_filed(handoff)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(min_size=1, max_size=80).filter(lambda b: b"/" not in b and b"\0" not in b),
       st.sampled_from([("intent-*.json",), ("*",), ("intent-*",)]))
def test_any_name_goes_through_the_name_rule(raw: bytes, patterns: tuple[str, ...]) -> None:
    name = os.fsdecode(raw)
    rule = NameRule(patterns)
    intent, hostile = rule.is_intent(name), rule.is_hostile(name)
    assert not (intent and hostile)
    if intent:
        name.encode("utf-8")  # an intent's name is always a valid state key and JSON string
    printable(name).encode("utf-8")  # and every name can be logged and shown
