"""Prometheus metrics and the health endpoints (SPEC §6).

Who counts
----------
Every count is made in the *supervisor* process: workers return a ``WorkResult`` to the supervisor,
which records it, moves the file and then calls :meth:`Metrics.observe_outcome`. Workers never touch
these objects. An ordinary in-process :class:`prometheus_client.CollectorRegistry` is therefore exact
across worker processes, and the library's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, mmap
files, no process metrics) is neither needed nor used. The process metrics (``process_*``) describe
the supervisor process.

Locking
-------
The Go loop deadlocked after 10 s because its metrics code took the same mutex twice. Here the
metric objects are prometheus-client's own (thread-safe, each with its own short internal lock), and
:class:`Health` holds one plain lock only for the few lines that read or write its fields, never
while calling anything else. Nothing in this module takes a lock while holding another.

HTTP server
-----------
:class:`MetricsServer` runs a :class:`http.server.ThreadingHTTPServer` on a daemon thread. Each
connection is served on its own daemon thread with a socket timeout, so a slow or silent client
cannot hold up scrapes, health probes or the supervisor. Requests are not logged.

Endpoints: ``/metrics`` (Prometheus text format 0.0.4 by default, OpenMetrics or text 1.0.0 when the
scraper asks for it with ``Accept``, gzip when accepted), ``/healthz``, ``/readyz``, ``/livez``
(``200 ok`` or ``503 <reason>``). Anything else is ``404``. ``GET`` and ``HEAD`` are supported.
"""

from __future__ import annotations

import gzip
import http.server
import logging
import socket
import socketserver
import threading
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted

__all__ = [
    "OUTCOMES",
    "PROCESSING_BUCKETS",
    "Health",
    "Metrics",
    "MetricsServer",
    "parse_addr",
]

#: The outcomes counted by ``conductor_intents_total``.
OUTCOMES: tuple[str, ...] = ("success", "failed", "skipped")

#: Histogram buckets (seconds) for ``conductor_processing_seconds``: 1 ms .. 60 s.
PROCESSING_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    float("inf"),
)

#: Seconds a connection may stay silent before the server drops it.
CLIENT_TIMEOUT_S = 5.0

_log = logging.getLogger("conductor_loop.metrics")


class Metrics:
    """The loop's Prometheus metrics, on their own registry.

    Each instance has its own :class:`CollectorRegistry` unless one is given, so tests (and several
    loops in one process) do not collide. Process, platform and GC collectors are registered on it.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create every metric on ``registry`` (a fresh registry when ``None``)."""
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.intents_total = Counter(
            "conductor_intents_total",
            "Intents filed, by outcome (success, failed, skipped).",
            ["outcome"],
            registry=r,
        )
        for outcome in OUTCOMES:
            self.intents_total.labels(outcome=outcome)
        self.processing_seconds = Histogram(
            "conductor_processing_seconds",
            "Time from taking an intent to filing it (validate, run porch, record), in seconds.",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "conductor_queue_depth",
            "Settled intents waiting for a worker.",
            registry=r,
        )
        self.workers = Gauge(
            "conductor_workers",
            "Worker processes currently in the pool.",
            registry=r,
        )
        self.workers_busy = Gauge(
            "conductor_workers_busy",
            "Worker processes currently processing an intent.",
            registry=r,
        )
        self.porch_timeouts_total = Counter(
            "conductor_porch_timeouts_total",
            "Porch runs killed because they exceeded --timeout.",
            registry=r,
        )
        self.events_total = Counter(
            "conductor_events_total",
            "Raw file-system events received from the watcher (before coalescing).",
            registry=r,
        )
        self.rescans_total = Counter(
            "conductor_rescans_total",
            "Full rescans of the handoff directory (queue overflow, lost watch, recreated dir, sweep).",
            registry=r,
        )
        self.retries_total = Counter(
            "conductor_retries_total",
            "Retries of intents after an environmental failure (spawn error, timeout, disk full).",
            registry=r,
        )
        self.watcher_up = Gauge(
            "conductor_watcher_up",
            "1 while the file watcher is running and all its watches are in place, else 0.",
            registry=r,
        )
        self.last_success_timestamp = Gauge(
            "conductor_last_success_timestamp_seconds",
            "Unix time of the last intent filed with outcome success.",
            registry=r,
        )
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            try:
                collector(registry=r)
            except ValueError:
                # Already registered (the caller passed a registry that has them, e.g. the global one).
                pass

    def observe_outcome(self, outcome: str, duration_s: float | None, *, timed_out: bool = False) -> None:
        """Count one filed intent.

        ``outcome`` is one of :data:`OUTCOMES`; ``duration_s`` (when known) goes into the processing
        histogram; ``timed_out`` also counts a porch timeout. A success sets the last-success time.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        self.intents_total.labels(outcome=outcome).inc()
        if duration_s is not None:
            self.processing_seconds.observe(max(0.0, float(duration_s)))
        if timed_out:
            self.porch_timeouts_total.inc()
        if outcome == "success":
            self.last_success_timestamp.set(time.time())

    def render(self) -> bytes:
        """The registry in the Prometheus text format (0.0.4)."""
        return generate_latest(self.registry)

    def encode(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format the ``Accept`` header asks for, and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class Health:
    """Thread-safe health state the supervisor updates and the HTTP server reads.

    Before the loop starts the state is *not ready* (watcher not started, handoff not checked) but
    healthy and live. In once mode there is no watcher: ``set_watcher(True, "once mode")``.
    """

    def __init__(self, *, live_timeout: float = 30.0) -> None:
        """``live_timeout``: seconds without :meth:`tick` after which ``/livez`` fails."""
        if live_timeout <= 0:
            raise ValueError("live_timeout must be positive")
        self._lock = threading.Lock()
        self._live_timeout = float(live_timeout)
        self._last_tick = time.monotonic()
        self._watcher: bool | None = None  # None: not started yet
        self._watcher_reason = "watcher not started"
        self._reconciling = False
        self._writable: bool | None = None  # None: not checked yet
        self._writable_reason = "handoff directory not checked yet"
        self._stopping = False

    @property
    def live_timeout(self) -> float:
        """Seconds without a tick after which the loop is considered stuck."""
        return self._live_timeout

    def tick(self) -> None:
        """Record that the supervisor loop turned."""
        now = time.monotonic()
        with self._lock:
            self._last_tick = now

    def set_watcher(self, alive: bool, reason: str = "") -> None:
        """Record whether the watcher runs with all its watches in place (``reason`` when not)."""
        with self._lock:
            self._watcher = bool(alive)
            self._watcher_reason = reason or ("watcher running" if alive else "watcher lost")

    def set_reconciling(self, flag: bool) -> None:
        """Record whether the start-up reconcile (or a rescan that blocks intake) is running."""
        with self._lock:
            self._reconciling = bool(flag)

    def set_handoff_writable(self, ok: bool, reason: str = "") -> None:
        """Record whether the handoff directory (and its sub-directories) can be written."""
        with self._lock:
            self._writable = bool(ok)
            self._writable_reason = reason or ("handoff writable" if ok else "handoff directory not writable")

    def set_stopping(self, flag: bool) -> None:
        """Record that the loop is shutting down (no longer takes new intents)."""
        with self._lock:
            self._stopping = bool(flag)

    def healthz(self) -> tuple[bool, str]:
        """False when the watcher died or lost a watch it could not re-add, or the loop is stuck.

        "Stuck" is the :meth:`livez` condition; including it lets one liveness probe on ``/healthz``
        catch both classic failures. Not ready (reconciling, stopping, handoff not writable) is not
        unhealthy.
        """
        with self._lock:
            watcher, reason = self._watcher, self._watcher_reason
        if watcher is False:
            return False, reason
        return self.livez()

    def readyz(self) -> tuple[bool, str]:
        """True when watching, able to write the handoff, not reconciling and not stopping."""
        with self._lock:
            watcher, watcher_reason = self._watcher, self._watcher_reason
            writable, writable_reason = self._writable, self._writable_reason
            reconciling, stopping = self._reconciling, self._stopping
        if stopping:
            return False, "stopping"
        if watcher is not True:
            return False, watcher_reason
        if reconciling:
            return False, "reconciling"
        if writable is not True:
            return False, writable_reason
        return True, "ok"

    def livez(self) -> tuple[bool, str]:
        """False when :meth:`tick` has not been called for ``live_timeout`` seconds."""
        with self._lock:
            last = self._last_tick
        age = time.monotonic() - last
        if age > self._live_timeout:
            return False, f"supervisor loop has not turned for {age:.1f}s (limit {self._live_timeout:g}s)"
        return True, "ok"


def parse_addr(addr: str) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` into ``(host, port)``.

    ``:PORT`` means all IPv4 interfaces (``0.0.0.0``), as in Go's ``net.Listen``; use ``[::]:PORT``
    for all IPv6 (and, where the host allows, IPv4) interfaces. Port 0 asks for an ephemeral port.
    Raises :class:`ValueError` with a message naming the problem.
    """
    text = addr.strip()
    if not text:
        raise ValueError("metrics address is empty: expected HOST:PORT, [IPV6]:PORT or :PORT")
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise ValueError(f"bad metrics address {addr!r}: expected [IPV6]:PORT, e.g. [::1]:9090")
        host, port_text = text[1:end], text[end + 2 :]
        if not host:
            raise ValueError(f"bad metrics address {addr!r}: empty IPv6 host between brackets")
        if ":" not in host:
            raise ValueError(f"bad metrics address {addr!r}: brackets are only for IPv6 addresses")
    else:
        if ":" not in text:
            raise ValueError(
                f"bad metrics address {addr!r}: missing port; expected HOST:PORT or :PORT (e.g. :9090)"
            )
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise ValueError(
                f"bad metrics address {addr!r}: write IPv6 addresses in brackets, e.g. [::1]:9090"
            )
        if not host:
            host = "0.0.0.0"  # noqa: S104 - ":PORT" means all interfaces, documented
    if any(c.isspace() for c in host):
        raise ValueError(f"bad metrics address {addr!r}: host contains whitespace")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"bad metrics address {addr!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"bad metrics address {addr!r}: port {port} is out of range 0..65535")
    return host, port


_PROBES = ("/healthz", "/readyz", "/livez")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, host: str, port: int, metrics: Metrics, health: Health, client_timeout: float) -> None:
        self.client_timeout = client_timeout
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        if not infos:  # pragma: no cover - getaddrinfo raises instead
            raise OSError(f"cannot resolve {host!r}")
        # A name such as "localhost" may resolve to ::1 first; listen where IPv4 clients look (as Go does).
        family, _, _, _, sockaddr = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
        self.address_family = family
        self.metrics = metrics
        self.health = health
        super().__init__((str(sockaddr[0]), int(sockaddr[1])), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (slow or hanging on some hosts)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished or stalled is not worth a traceback on stderr."""
        _log.debug("metrics http: error serving %s", client_address, exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    server_version = "conductor-loop"
    sys_version = ""

    def setup(self) -> None:
        """Apply the server's socket timeout to this connection."""
        self.request.settimeout(self.server.client_timeout)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Do not log each request."""

    def do_GET(self) -> None:
        """Serve a request with a body."""
        self._serve(head=False)

    def do_HEAD(self) -> None:
        """Serve a request without a body."""
        self._serve(head=True)

    def _serve(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        headers: list[tuple[str, str]] = []
        if path == "/metrics":
            body, content_type = self.server.metrics.encode(self.headers.get("Accept"))
            if gzip_accepted(self.headers.get("Accept-Encoding") or ""):
                body = gzip.compress(body)
                headers.append(("Content-Encoding", "gzip"))
            status = 200
        elif path in _PROBES:
            health = self.server.health
            check = {"/healthz": health.healthz, "/readyz": health.readyz, "/livez": health.livez}[path]
            ok, reason = check()
            status = 200 if ok else 503
            text = "ok" if ok else (reason or "unavailable")
            body = (text.replace("\n", " ") + "\n").encode("utf-8", "replace")
            content_type = "text/plain; charset=utf-8"
        else:
            status, body, content_type = 404, b"not found\n", "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class MetricsServer:
    """Serves ``/metrics``, ``/healthz``, ``/readyz`` and ``/livez`` on a background thread."""

    def __init__(
        self, addr: str, metrics: Metrics, health: Health, *, client_timeout: float = CLIENT_TIMEOUT_S
    ) -> None:
        """``addr`` as for :func:`parse_addr` (checked here, so a bad address fails early).

        ``client_timeout``: seconds a connection may stay silent (or stall reading) before it is dropped.
        """
        if client_timeout <= 0:
            raise ValueError("client_timeout must be positive")
        self._host, self._port = parse_addr(addr)
        self._client_timeout = float(client_timeout)
        self._metrics = metrics
        self._health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound ``(host, port)`` while running, else ``None``."""
        server = self._server
        if server is None:
            return None
        host, port = server.server_address[:2]
        return str(host), int(port)

    def start(self) -> tuple[str, int]:
        """Bind and serve on a daemon thread; return the bound ``(host, port)``.

        Raises :class:`OSError` when the address cannot be bound (in use, not local, no permission).
        """
        with self._lock:
            if self._server is not None:
                raise RuntimeError("metrics server already started")
            server = _Server(self._host, self._port, self._metrics, self._health, self._client_timeout)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="conductor-metrics-http",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        host, port = server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Stop serving, release the port and join the thread. Safe to call more than once."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10.0)
