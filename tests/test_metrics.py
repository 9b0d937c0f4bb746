"""Metrics and health endpoints, scraped over real HTTP."""

from __future__ import annotations

import gzip
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conductor_loop.fleet.ingestmetrics import FleetMetrics
from conductor_loop.health import Health
from conductor_loop.metrics import Metrics
from conductor_loop.metricserver import MetricsServer, parse_addr
from needs import missing, need_tool

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def get(
    port: int, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def served() -> Iterator[tuple[Metrics, Health, MetricsServer, int]]:
    metrics = Metrics()
    health = Health(live_timeout=30.0)
    server = MetricsServer("127.0.0.1:0", metrics, health)
    host, port = server.start()
    assert host == "127.0.0.1"
    assert port > 0
    try:
        yield metrics, health, server, port
    finally:
        server.stop()


@pytest.mark.timeout(30)
def test_metrics_scrape_values(served: tuple[Metrics, Health, MetricsServer, int]) -> None:
    metrics, _health, _server, port = served
    status, headers, body = get(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    before = samples(body.decode())
    for outcome in ("success", "failed", "skipped"):
        assert before[("conductor_intents_total", (("outcome", outcome),))] == 0.0

    metrics.observe_outcome("success", 0.004)
    metrics.observe_outcome("success", 0.2)
    metrics.observe_outcome("failed", 31.0, timed_out=True)
    metrics.observe_outcome("failed", 0.5)
    metrics.observe_outcome("skipped", None)
    metrics.queue_depth.set(7)
    metrics.workers.set(3)
    metrics.workers_busy.set(2)
    metrics.events_total.inc(11)
    metrics.rescans_total.inc()
    metrics.sweeps_total.inc(4)
    metrics.retries_total.inc(2)
    metrics.watcher_up.set(1)

    status, _, body = get(port, "/metrics")
    assert status == 200
    got = samples(body.decode())
    assert got[("conductor_intents_total", (("outcome", "success"),))] == 2.0
    assert got[("conductor_intents_total", (("outcome", "failed"),))] == 2.0
    assert got[("conductor_intents_total", (("outcome", "skipped"),))] == 1.0
    assert got[("conductor_processing_seconds_count", ())] == 4.0
    assert got[("conductor_processing_seconds_sum", ())] == pytest.approx(31.704)
    assert got[("conductor_processing_seconds_bucket", (("le", "0.005"),))] == 1.0
    assert got[("conductor_processing_seconds_bucket", (("le", "0.25"),))] == 2.0
    assert got[("conductor_processing_seconds_bucket", (("le", "30.0"),))] == 3.0
    assert got[("conductor_processing_seconds_bucket", (("le", "60.0"),))] == 4.0
    assert got[("conductor_queue_depth", ())] == 7.0
    assert got[("conductor_workers", ())] == 3.0
    assert got[("conductor_workers_busy", ())] == 2.0
    assert got[("conductor_porch_timeouts_total", ())] == 1.0
    assert got[("conductor_events_total", ())] == 11.0
    assert got[("conductor_rescans_total", ())] == 1.0
    assert got[("conductor_sweeps_total", ())] == 4.0
    assert got[("conductor_retries_total", ())] == 2.0
    assert got[("conductor_watcher_up", ())] == 1.0
    assert got[("conductor_last_success_timestamp_seconds", ())] == pytest.approx(time.time(), abs=60)
    # Process metrics of the supervisor process.
    assert got[("process_resident_memory_bytes", ())] > 0
    assert any(name == "python_info" for name, _ in got)
    assert any(name.startswith("python_gc_") for name, _ in got)


def test_observe_outcome_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        Metrics().observe_outcome("exploded", 1.0)


def test_separate_registries_do_not_collide() -> None:
    a, b = Metrics(), Metrics()
    a.observe_outcome("success", 0.1)
    assert b'conductor_intents_total{outcome="success"} 0.0' in b.render()
    assert b'conductor_intents_total{outcome="success"} 1.0' in a.render()


@pytest.mark.timeout(30)
def test_metrics_negotiation_and_gzip(served: tuple[Metrics, Health, MetricsServer, int]) -> None:
    _metrics, _health, _server, port = served
    status, headers, body = get(
        port, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    status, headers, body = get(port, "/metrics", headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    assert b"conductor_queue_depth" in gzip.decompress(body)


@pytest.mark.timeout(30)
def test_health_endpoints_flip(served: tuple[Metrics, Health, MetricsServer, int]) -> None:
    _metrics, health, _server, port = served
    # Before the loop starts: healthy and live, not ready.
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/livez")[0] == 200
    status, _, body = get(port, "/readyz")
    assert status == 503
    assert b"watcher not started" in body

    health.set_reconciling(True)
    health.set_watcher(True)
    health.set_handoff_writable(True)
    status, _, body = get(port, "/readyz")
    assert (status, body) == (503, b"reconciling\n")
    health.set_reconciling(False)
    status, headers, body = get(port, "/readyz")
    assert (status, body) == (200, b"ok\n")
    assert headers["Content-Type"].startswith("text/plain")

    health.set_handoff_writable(False, "handoff: permission denied")
    status, _, body = get(port, "/readyz")
    assert (status, body) == (503, b"handoff: permission denied\n")
    assert get(port, "/healthz")[0] == 200  # not writable is not unhealthy
    health.set_handoff_writable(True)

    health.set_watcher(False, "watch on handoff lost\nand not re-added")
    status, _, body = get(port, "/healthz")
    assert status == 503
    assert body == b"watch on handoff lost and not re-added\n"  # one line, always
    assert get(port, "/readyz")[0] == 503
    health.set_watcher(True, "watcher restored")
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/readyz")[0] == 200

    health.set_stopping(True)
    status, _, body = get(port, "/readyz")
    assert (status, body) == (503, b"stopping\n")
    assert get(port, "/livez")[0] == 200


@pytest.mark.timeout(30)
def test_livez_fails_without_ticks() -> None:
    health = Health(live_timeout=0.2)
    server = MetricsServer("127.0.0.1:0", Metrics(), health)
    _, port = server.start()
    try:
        health.tick()
        assert get(port, "/livez")[0] == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and health.livez()[0]:
            time.sleep(0.05)
        status, _, body = get(port, "/livez")
        assert status == 503
        assert b"has not turned" in body
        assert get(port, "/healthz")[0] == 503  # a stuck loop is unhealthy too
        health.tick()
        assert get(port, "/livez")[0] == 200
        assert get(port, "/healthz")[0] == 200
    finally:
        server.stop()


def test_health_rejects_bad_timeout() -> None:
    with pytest.raises(ValueError):
        Health(live_timeout=0)


@pytest.mark.timeout(30)
def test_not_found_and_head(served: tuple[Metrics, Health, MetricsServer, int]) -> None:
    _metrics, _health, _server, port = served
    for path in ("/", "/metricsx", "/healthz/extra", "/../etc/passwd"):
        status, _, body = get(port, path)
        assert status == 404, path
        assert body == b"not found\n"
    status, headers, body = get(port, "/metrics", method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) > 0
    status, _, body = get(port, "/livez?verbose=1", method="HEAD")
    assert (status, body) == (200, b"")
    assert get(port, "/healthz?x=1")[0] == 200


@pytest.mark.timeout(30)
def test_stop_idempotent_and_port_released() -> None:
    server = MetricsServer("127.0.0.1:0", Metrics(), Health())
    _, port = server.start()
    assert get(port, "/healthz")[0] == 200
    server.stop()
    server.stop()
    assert server.address is None
    with pytest.raises(OSError):
        get(port, "/healthz")
    # The port is free again: a new server can bind exactly it.
    again = MetricsServer(f"127.0.0.1:{port}", Metrics(), Health())
    assert again.start() == ("127.0.0.1", port)
    again.stop()
    # Stopping a server that never started is fine too.
    MetricsServer(":0", Metrics(), Health()).stop()


@pytest.mark.timeout(30)
def test_silent_client_does_not_block_scrapes(served: tuple[Metrics, Health, MetricsServer, int]) -> None:
    _metrics, _health, _server, port = served
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    partial = socket.create_connection(("127.0.0.1", port), timeout=10)
    partial.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    try:
        for _ in range(5):
            assert get(port, "/metrics")[0] == 200
            assert get(port, "/healthz")[0] == 200
    finally:
        for sock in [*silent, partial]:
            sock.close()


@pytest.mark.timeout(30)
def test_silent_client_is_dropped_after_timeout() -> None:
    server = MetricsServer("127.0.0.1:0", Metrics(), Health(), client_timeout=0.3)
    _, port = server.start()
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        sock.sendall(b"GET /metr")  # a request that never completes
        assert sock.recv(1024) == b""  # the server closed the connection (else recv times out: error)
        assert get(port, "/livez")[0] == 200
    finally:
        sock.close()
        server.stop()


def test_localhost_binds_ipv4() -> None:
    server = MetricsServer("localhost:0", Metrics(), Health())
    host, port = server.start()
    try:
        assert host == "127.0.0.1"
        assert get(port, "/livez")[0] == 200
    finally:
        server.stop()


@pytest.mark.timeout(30)
def test_stop_does_not_wait_for_silent_client() -> None:
    server = MetricsServer("127.0.0.1:0", Metrics(), Health())
    _, port = server.start()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        server.stop()  # must return although a connection is still open and idle
        assert server.address is None
    finally:
        sock.close()


@pytest.mark.timeout(30)
def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        missing("no IPv6 in this Python")
    server = MetricsServer("[::1]:0", Metrics(), Health())
    try:
        host, port = server.start()
    except OSError as err:
        missing(f"IPv6 loopback not available: {err}")
    try:
        assert host == "::1"
        with urllib.request.urlopen(f"http://[::1]:{port}/livez", timeout=10) as resp:
            assert resp.status == 200
    finally:
        server.stop()


def test_bind_conflict_raises() -> None:
    first = MetricsServer("127.0.0.1:0", Metrics(), Health())
    _, port = first.start()
    try:
        with pytest.raises(OSError):
            MetricsServer(f"127.0.0.1:{port}", Metrics(), Health()).start()
    finally:
        first.stop()


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:9090", ("127.0.0.1", 9090)),
        (":9090", ("0.0.0.0", 9090)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:0", ("::", 0)),
        ("localhost:65535", ("localhost", 65535)),
        (" 0.0.0.0:1 ", ("0.0.0.0", 1)),
    ],
)
def test_parse_addr_ok(addr: str, expected: tuple[str, int]) -> None:
    assert parse_addr(addr) == expected


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("", "empty"),
        ("9090", "missing port"),
        ("host:", "not a number"),
        ("host:http", "not a number"),
        ("host:-1", "not a number"),
        ("host:70000", "out of range"),
        ("::1:9090", "brackets"),
        ("[::1]9090", "expected"),
        ("[::1", "expected"),
        ("[]:9090", "empty IPv6"),
        ("[localhost]:80", "only for IPv6"),
        ("ho st:80", "whitespace"),
        ("host:٣", "not a number"),
    ],
)
def test_parse_addr_bad(addr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_addr(addr)


def test_bad_addr_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="missing port"):
        MetricsServer("9090", Metrics(), Health())


# --- the operator docs that ship alongside -------------------------------------------------------


def test_alert_rules_yaml() -> None:
    doc = yaml.safe_load((DOCS / "alerts.yml").read_text())
    groups = doc["groups"]
    assert groups
    names = set()
    exprs = []
    for group in groups:
        assert group["name"]
        for rule in group["rules"]:
            assert {"alert", "expr", "labels", "annotations"} <= set(rule)
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert "summary" in rule["annotations"]
            names.add(rule["alert"])
            exprs.append(rule["expr"])
    assert len(names) >= 4
    text = "\n".join(exprs)
    # queue growing, failure rate, timeouts, watcher lost (issue 5)
    for metric in (
        "conductor_queue_depth",
        "conductor_intents_total",
        "conductor_porch_timeouts_total",
        "conductor_watcher_up",
    ):
        assert metric in text, metric
    # Every metric the rules use is one this module exports (or a standard one).
    metrics = Metrics()
    FleetMetrics(metrics.registry)  # fleet mode's, on the same registry
    exported = metrics.render().decode()
    for token in text.replace("(", " ").replace(")", " ").replace("{", " ").replace("[", " ").split():
        if token.startswith("conductor_"):
            base = token.split("{")[0]
            assert base in exported, base


def test_kubernetes_manifest_yaml() -> None:
    docs = [d for d in yaml.safe_load_all((DOCS / "deploy" / "kubernetes.yaml").read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert {"Deployment", "PersistentVolumeClaim", "ConfigMap"} <= set(kinds)
    dep = kinds["Deployment"]
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] in {"/livez", "/healthz"}
    args = container["args"]
    timeout_arg = args[args.index("--timeout") + 1]
    assert timeout_arg.endswith("s")
    assert pod["terminationGracePeriodSeconds"] > int(timeout_arg[:-1])
    config = kinds["ConfigMap"]
    assert "config.toml" in config["data"]


@pytest.mark.timeout(60)
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = DOCS / "deploy" / "conductor-loop.service"
    text = unit.read_text()
    for directive in (
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "KillMode=mixed",
        "Restart=on-failure",
        "ReadWritePaths=",
    ):
        assert directive in text, directive
    tool = need_tool("systemd-analyze", "Debian's systemd package; .ci/run installs it")
    # verify needs the ExecStart binary to exist: point it at a stand-in in a copy of the unit.
    fake = tmp_path / "conductor-loop"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    binary = exec_line.split("=", 1)[1].split()[0]
    copy = tmp_path / "conductor-loop.service"
    copy.write_text(text.replace(binary, str(fake)))
    proc = subprocess.run(
        [tool, "verify", str(copy)], capture_output=True, text=True, timeout=50, check=False
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and "System has not been booted" in output:
        missing(f"systemd-analyze cannot run here: {output.strip()[:200]}")
    # Unknown directives or bad values are reported as warnings with the unit's name.
    problems = [
        line
        for line in output.splitlines()
        if "conductor-loop.service" in line
        and ("Unknown" in line or "Failed to parse" in line or "Invalid" in line)
    ]
    assert not problems, output
    assert proc.returncode == 0, output


def _dry_run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI with ``args`` and ``--dry-run``: proves the documented options are accepted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    if "--config" not in args:  # keep a host's /etc/conductor-loop/config.toml out of the test
        (tmp_path / "empty.toml").write_text("")
        env["CONDUCTOR_CONFIG"] = str(tmp_path / "empty.toml")
    return subprocess.run(
        [sys.executable, "-m", "conductor_loop", *args, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
    )


@pytest.mark.timeout(60)
def test_kubernetes_args_and_config_accepted_by_cli(tmp_path: Path) -> None:
    docs = [d for d in yaml.safe_load_all((DOCS / "deploy" / "kubernetes.yaml").read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    config = tmp_path / "config.toml"
    config.write_text(kinds["ConfigMap"]["data"]["config.toml"])
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["conductor-loop"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    replace = {
        f"{mounts['config']}/config.toml": str(config),
        mounts["handoff"]: str(tmp_path / "handoff"),
        mounts["out"]: str(tmp_path / "out"),
    }
    args = [replace.get(a, a) for a in container["args"]]
    assert str(config) in args
    assert str(tmp_path / "handoff") in args
    proc = _dry_run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nothing was changed" in proc.stdout


@pytest.mark.timeout(60)
def test_systemd_exec_start_accepted_by_cli(tmp_path: Path) -> None:
    text = (DOCS / "deploy" / "conductor-loop.service").read_text().replace("\\\n", " ")
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_line.split("=", 1)[1])
    assert argv[0].endswith("conductor-loop")
    rw = (
        next(line for line in text.splitlines() if line.startswith("ReadWritePaths="))
        .split("=", 1)[1]
        .split()
    )
    handoff, out = argv[argv.index("--handoff") + 1], argv[argv.index("--out") + 1]
    assert handoff in rw
    assert out in rw
    timeout_s = float(argv[argv.index("--timeout") + 1].rstrip("s"))
    stop = next(line for line in text.splitlines() if line.startswith("TimeoutStopSec="))
    assert float(stop.split("=", 1)[1]) > timeout_s + 5
    args = [str(tmp_path / "h") if a == handoff else str(tmp_path / "o") if a == out else a for a in argv[1:]]
    proc = _dry_run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nothing was changed" in proc.stdout


_RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'conductor_watcher_up{{job="conductor-loop",instance="a"}}'
        values: '1 1 0 0 0 0'
      - series: 'conductor_intents_total{{job="conductor-loop",instance="a",outcome="failed"}}'
        values: '0+2x40'
      - series: 'conductor_intents_total{{job="conductor-loop",instance="a",outcome="success"}}'
        values: '0+1x40'
      - series: 'conductor_porch_timeouts_total{{job="conductor-loop",instance="a"}}'
        values: '0 0 0 1 1 1'
      - series: 'conductor_queue_depth{{job="conductor-loop",instance="a"}}'
        values: '0+1x40'
      - series: 'conductor_workers{{job="conductor-loop",instance="a"}}'
        values: '2x40'
      - series: 'conductor_workers_busy{{job="conductor-loop",instance="a"}}'
        values: '2x40'
      - series: 'conductor_fleet_broker_up{{job="conductor-loop",instance="a"}}'
        values: '1 1 0 0 0 0'
      - series: 'conductor_fleet_max_deliveries_total{{job="conductor-loop",instance="a"}}'
        values: '0 0 1 1 1 1'
    alert_rule_test:
      - eval_time: 5m
        alertname: ConductorFleetBrokerDown
        exp_alerts:
          - exp_labels: {{severity: critical, instance: a}}
      - eval_time: 3m
        alertname: ConductorFleetMaxDeliveries
        exp_alerts:
          - exp_labels: {{severity: warning, instance: a}}
      - eval_time: 5m
        alertname: ConductorWatcherLost
        exp_alerts:
          - exp_labels: {{severity: critical, instance: a}}
      - eval_time: 1m
        alertname: ConductorWatcherLost
        exp_alerts: []
      - eval_time: 5m
        alertname: ConductorPorchTimeouts
        exp_alerts:
          - exp_labels: {{severity: warning, instance: a}}
      - eval_time: 30m
        alertname: ConductorHighFailureRate
        exp_alerts:
          - exp_labels: {{severity: warning, instance: a}}
      - eval_time: 30m
        alertname: ConductorQueueGrowing
        exp_alerts:
          - exp_labels: {{severity: warning, job: conductor-loop, instance: a}}
      - eval_time: 30m
        alertname: ConductorQueueStuck
        exp_alerts: []
"""


@pytest.mark.timeout(60)
def test_alert_rules_promtool(tmp_path: Path) -> None:
    tool = need_tool("promtool", "apt-get install prometheus; .ci/run installs it")
    rules = DOCS / "alerts.yml"
    proc = subprocess.run([tool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # promtool compares annotations exactly; test the expressions on a copy without them.
    doc = yaml.safe_load(rules.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    bare = tmp_path / "alerts.yml"
    bare.write_text(yaml.safe_dump(doc))
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(_RULE_TESTS.format(rules=json.dumps(str(bare))))
    proc = subprocess.run([tool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
