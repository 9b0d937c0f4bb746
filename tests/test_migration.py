"""A handoff as a Go site leaves it, started with the Go unit's command line (docs/operations.md, migration)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import intent_body, read_calls, run_cli, statuses, write_intent

pytestmark = pytest.mark.timeout(240)

K8S_NETWORK: dict[str, Any] = {
    "apiVersion": "nephoran.com/v1",
    "kind": "NetworkIntent",
    "metadata": {"name": "upf-scale", "namespace": "core",
                 "annotations": {"nephoran.io/correlation-id": "corr-k8s-1"}},
    "spec": {"action": "scale", "target": {"name": "upf"},
             "parameters": {"networkFunctions": [{"name": "upf", "type": "cnf",
                                                  "resources": {"cpu": "2", "memory": "4Gi"}}]}},
}
K8S_SCALING: dict[str, Any] = {
    "apiVersion": "nephoran.com/v1",
    "kind": "ScalingIntent",
    "metadata": {"name": "du-scale", "namespace": "ran"},
    "spec": {"replicas": 4},
}


def _go_state(entries: dict[Path, tuple[bytes, str]]) -> dict[str, Any]:
    """A Go ``.conductor-state.json`` with one entry per path: (content, Go status)."""
    return {"version": "1.0", "saved_at": "2026-01-01T00:00:00Z", "states": {
        str(p): {"file_path": str(p), "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
                 "processed_at": "2026-01-01T00:00:00Z", "status": status}
        for p, (body, status) in entries.items()}}


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir()) if p.is_file()}


def _go_site(tmp_path: Path) -> tuple[Path, Path]:
    """The handoff of a Go site: state, filed intents with error logs, one old intent still in place."""
    handoff, out = tmp_path / "handoff", tmp_path / "out"
    for d in ("processed", "failed", "status"):
        (handoff / d).mkdir(parents=True)
    old_done = write_intent(handoff, "intent-old-done.json", target="cu-cp")
    done_body = old_done.read_bytes()
    (handoff / "processed" / "intent-filed.json").write_text(json.dumps(intent_body(target="amf")))
    (handoff / "failed" / "intent-broke.json").write_text("{ not json")
    (handoff / "failed" / "intent-broke.json.error.log").write_text("porch exited with code 1\n")
    go_status = {"intent_file": "intent-filed.json", "status": "success", "message": "written by the Go loop"}
    (handoff / "status" / "intent-filed.json.status").write_text(json.dumps(go_status))
    state = _go_state({
        old_done: (done_body, "processed"),
        handoff / "intent-filed.json": (b"{}", "processed"),
        handoff / "intent-broke.json": (b"{ not json", "failed"),
    })
    (handoff / ".conductor-state.json").write_text(json.dumps(state))
    return handoff, out


def _go_unit(handoff: Path, out: Path, porch: Path, log: Path) -> Any:
    """The Go unit's ExecStart, word for word, plus -once; go-compat from the environment (a drop-in)."""
    return run_cli("-handoff", str(handoff), "-porch", str(porch), "-mode", "structured", "-out", str(out),
                   "-period", "2s", "-once",
                   env={"CONDUCTOR_FAKEPORCH_LOG": str(log), "CONDUCTOR_INTENT_SCHEMA": "go-compat"})


def test_a_go_site_migrates(tmp_path: Path, fake_porch: Path, porch_log: Path) -> None:
    handoff, out = _go_site(tmp_path)
    flat = write_intent(handoff, "intent-flat.json", body={**intent_body(target="smf"), "timestamp": "t"})
    net = write_intent(handoff, "intent-net.json", body=K8S_NETWORK)
    scale = write_intent(handoff, "intent-k8s-scale.json", body=K8S_SCALING)
    filed_before = {d: _snapshot(handoff / d) for d in ("processed", "failed")}

    r = _go_unit(handoff, out, fake_porch, porch_log)
    assert r.returncode == 0, r.stderr  # the stale failed/intent-broke.json does not count
    assert "processed 3, skipped 1, failed 0" in r.stdout

    argvs = sorted(c["argv"] for c in read_calls(porch_log))
    assert argvs == sorted([str(fake_porch), "-intent", str(p), "-out", str(out), "-structured"]
                           for p in (flat, net, scale))
    docs = statuses(handoff)
    assert docs["intent-old-done.json"]["status"] == "skipped"  # deduped by the Go state
    assert docs["intent-net.json"]["correlation_id"] == "corr-k8s-1"
    assert all(docs[n]["status"] == "success" for n in ("intent-flat.json", "intent-net.json", "intent-k8s-scale.json"))
    for d, before in filed_before.items():  # nothing already filed moved or changed
        now = _snapshot(handoff / d)
        assert {k: v for k, v in now.items() if k in before} == before

    # A second run with one new bad intent: exit 8 counts this run only.
    write_intent(handoff, "intent-bad.json", body={"intent_type": "scaling", "target": "x"})
    r = _go_unit(handoff, out, fake_porch, porch_log)
    assert r.returncode == 8, r.stderr
    assert "processed 0, skipped 0, failed 1" in r.stdout
    assert (handoff / "failed" / "intent-bad.json").exists()
    assert len(read_calls(porch_log)) == 3  # the invalid one never reached porch
