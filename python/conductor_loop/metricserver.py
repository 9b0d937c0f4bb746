"""The HTTP server of ``--metrics-addr``: ``/metrics`` and the health endpoints.

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
from typing import Any, Protocol

from prometheus_client.exposition import gzip_accepted

__all__ = ["CLIENT_TIMEOUT_S", "HealthSource", "MetricsServer", "MetricsSource", "parse_addr"]


class MetricsSource(Protocol):
    """What ``/metrics`` serves (:class:`conductor_loop.metrics.Metrics`, or a worker host's metrics)."""

    def encode(self, accept: str | None = None) -> tuple[bytes, str]:
        """The body in the format ``accept`` asks for, and its content type."""
        ...


class HealthSource(Protocol):
    """What the probes answer (:class:`conductor_loop.metrics.Health`, or a worker host's health)."""

    def healthz(self) -> tuple[bool, str]:
        """``/healthz``: ok, and the reason when not."""
        ...

    def readyz(self) -> tuple[bool, str]:
        """``/readyz``: ok, and the reason when not."""
        ...

    def livez(self) -> tuple[bool, str]:
        """``/livez``: ok, and the reason when not."""
        ...

#: Seconds a connection may stay silent before the server drops it.
CLIENT_TIMEOUT_S = 5.0

_log = logging.getLogger("conductor_loop.metrics")


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

    def __init__(
        self, host: str, port: int, metrics: MetricsSource, health: HealthSource, client_timeout: float
    ) -> None:
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
        self, addr: str, metrics: MetricsSource, health: HealthSource, *, client_timeout: float = CLIENT_TIMEOUT_S
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
