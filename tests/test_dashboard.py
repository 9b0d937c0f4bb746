"""docs/grafana/conductor-loop.json: importable, and every metric its queries name is served by a real loop."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import write_intent
from loopproc import LoopProcess, wait_for

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "conductor-loop.json"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()")

pytestmark = pytest.mark.timeout(180)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: no functions, label names, keywords or variables."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals (label values, regexes)
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range selectors and subqueries
    e = _GROUPING.sub(" ", e)  # by (...), on (...), group_left (...)
    return {m for m in _IDENT.findall(e) if m.lower() not in _KEYWORDS}


def test_metric_names_extraction() -> None:
    expr = ('histogram_quantile(0.99, sum by (instance, le) (rate(conductor_processing_seconds_bucket'
            '{instance=~"$instance", job="a_b"}[$__rate_interval]))) > 10 and on (instance) '
            'time() - conductor_last_success_timestamp_seconds offset 5m > bool 1e3')
    assert metric_names(expr) == {"conductor_processing_seconds_bucket", "conductor_last_success_timestamp_seconds"}
    assert metric_names("label_values(conductor_watcher_up, instance)") == {"conductor_watcher_up", "instance"}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in doc["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # panels of a collapsed row
    return out


def _queries(doc: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(doc) for t in p.get("targets", [])]
    for var in doc["templating"]["list"]:
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*", text)
        if m:
            exprs.append(m.group(1))  # label_values(SELECTOR, label): the selector is PromQL
    return exprs


def test_dashboard_is_importable() -> None:
    doc = _dashboard()
    assert doc["schemaVersion"] >= 36
    assert [i["name"] for i in doc["__inputs"]] == ["DS_PROMETHEUS"]
    assert doc["__inputs"][0]["pluginId"] == "prometheus"
    assert doc["uid"] and doc["title"] == "conductor-loop"
    ids = [p["id"] for p in _panels(doc)]
    assert len(ids) == len(set(ids))
    for p in _panels(doc):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    titles = " | ".join(p["title"].lower() for p in _panels(doc))
    for what in ("intake", "filing rate by outcome", "queue depth", "busy workers", "p50", "p99",
                 "porch timeouts", "rescans", "retries", "watcher up", "last success"):
        assert what in titles, what
    named = set().union(*(metric_names(e) for e in _queries(doc)))
    assert {
        "conductor_intents_total", "conductor_queue_depth", "conductor_workers", "conductor_workers_busy",
        "conductor_processing_seconds_bucket", "conductor_porch_timeouts_total", "conductor_rescans_total",
        "conductor_retries_total", "conductor_watcher_up", "conductor_last_success_timestamp_seconds",
    } <= named
    assert any('outcome' in e and "conductor_intents_total" in e for e in _queries(doc))
    assert any("histogram_quantile(0.5," in e for e in _queries(doc))
    assert any("histogram_quantile(0.99," in e for e in _queries(doc))
    assert any("time() - " in e and "conductor_last_success_timestamp_seconds" in e for e in _queries(doc))


def test_every_dashboard_metric_is_served(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--workers", "1") as loop:
        loop.ready()
        write_intent(handoff, "intent-a.json", target="a")
        write_intent(handoff, "intent-b.json", target="b")
        wait_for(lambda: len(list((handoff / "processed").glob("*.json"))) == 2, timeout=60, what="2 filed")
        wait_for(lambda: (loop.metric("conductor_last_success_timestamp_seconds") or 0) > 0, what="a success")
        code, text = loop.get("/metrics")
        assert code == 200
        loop.signal(signal.SIGTERM)
        assert loop.proc.wait(30) == 0
    samples: set[str] = set()
    types: dict[str, str] = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        samples.update(s.name for s in fam.samples)
    queries = _queries(_dashboard())
    named = set().union(*(metric_names(e) for e in queries)) - {"instance"}
    assert named
    missing = sorted(n for n in named if n not in samples)
    assert not missing, f"the dashboard queries metrics a loop does not serve: {missing}"
    for name in named:
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base is not None and base in types:
            assert types[base] == "histogram", (name, types[base])
