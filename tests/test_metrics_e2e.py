"""Metrics of a running loop after a mixed run, by a real HTTP scrape (README, "Metrics")."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(120)


def scrape(loop: LoopProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, text = loop.get("/metrics")
    assert code == 200
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_mixed_run_metrics(handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_FAIL_MATCH": "intent-bad",
           "CONDUCTOR_FAKEPORCH_HANG_MATCH": "intent-hang"}
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), "--timeout", "300ms",
                     "--retries", "1", "--workers", "2", env=env) as loop:
        loop.ready()
        write_intent(handoff, "intent-ok1.json", target="a")
        write_intent(handoff, "intent-ok2.json", target="b", reason="sensitive-reason-text")
        write_intent(handoff, "intent-bad.json", target="c")
        write_intent(handoff, "intent-invalid.json", replicas=0)
        write_intent(handoff, "intent-hang.json", target="d")
        wait_for(lambda: len(list((handoff / "failed").glob("*.json"))) == 3, timeout=60, what="3 failed")
        write_intent(handoff, "intent-ok1.json", target="a")  # same content again: skipped
        wait_for(lambda: len(list((handoff / "processed").glob("*.json"))) == 3, timeout=30, what="skip filed")
        m = wait_for(lambda: (s := scrape(loop)) and s[("conductor_queue_depth", ())] == 0 and s, what="scrape")
        assert m[("conductor_intents_total", (("outcome", "success"),))] == 2
        assert m[("conductor_intents_total", (("outcome", "failed"),))] == 3
        assert m[("conductor_intents_total", (("outcome", "skipped"),))] == 1
        assert m[("conductor_porch_timeouts_total", ())] == 2  # first attempt + the retry
        assert m[("conductor_processing_seconds_count", ())] == 6
        assert m[("conductor_workers", ())] == 2
        assert m[("conductor_events_total", ())] >= 6
        assert ("conductor_rescans_total", ()) in m and ("conductor_workers_busy", ()) in m
        assert ("process_resident_memory_bytes", ()) in m
        assert loop.get("/healthz")[0] == 200 and loop.get("/readyz")[0] == 200 and loop.get("/livez")[0] == 200
        loop.signal(signal.SIGTERM)
        assert loop.proc.wait(30) == 0
    outcomes = [e["outcome"] for e in loop.events() if e.get("event", "").startswith("intent.")
                and e.get("outcome")]
    assert sorted(outcomes) == ["failed", "failed", "failed", "skipped", "success", "success"]
    for e in loop.events():  # never logs intent content
        assert "sensitive-reason-text" not in json.dumps(e)
