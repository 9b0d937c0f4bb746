"""Structured logging for the loop (docs/operations.md, "Logs"): one line per intent outcome and per lifecycle event.

Two formats, chosen by ``--log-format``:

``text`` (default)::

    2026-11-27T03:30:00.123Z INFO intent.success intent=intent-a.json sha256=ab12... worker=2 \
duration_ms=3.1 outcome=success moved_to=processed/intent-a.json

  ``key=value`` pairs, only those that are set. A value containing spaces, quotes, ``=``, a
  backslash or any non-printable character (newline, carriage return, escape sequences, Unicode line
  separators) is written in double quotes with those characters escaped, so a hostile intent *name*
  can never forge or split a log line.

``json``: one JSON object per line with the keys ``ts`` (RFC 3339 UTC, milliseconds), ``level``
(lower case), ``event``, ``intent``, ``sha256``, ``worker``, ``duration_ms``, ``outcome`` (always
present, ``null`` when not set) followed by any extra fields (``message``, ``moved_to``,
``correlation_id``, ``count``, ``reason``...). Non-ASCII is escaped (``\\uXXXX``).

Everything goes through the ``conductor_loop`` logger (never the root logger);
:func:`setup_logging` gives it one handler and stops propagation, so a library that configures the
root logger cannot duplicate lines. Modules may also log with ``logging.getLogger(__name__)``
(a child of ``conductor_loop``): such records come out as event ``log`` with ``logger`` and
``message`` fields.

Callers must never pass intent *content*: only its name, hash, correlation id and the loop's own
facts about it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import IO, Any

from conductor_loop.clock import rfc3339

__all__ = ["EVENTS", "LOGGER_NAME", "log_event", "parse_level", "setup_logging"]

LOGGER_NAME = "conductor_loop"

#: Every event the loop emits, each documented in docs/operations.md ("Events"); a test checks both ways.
EVENTS: tuple[str, ...] = (
    "loop.start",
    "loop.stopping",
    "loop.force_stop",
    "loop.stop",
    "loop.reconcile",
    "loop.rescan",
    "loop.left_unsettled",
    "scan.lease_unavailable",
    "loop.handoff_recreated",
    "loop.lock_lost",
    "state.recovered",
    "state.imported",
    "state.checked",
    "intent.recovered",
    "move.recovered",
    "worker.start",
    "worker.retire",
    "worker.exit",
    "worker.replaced",
    "pool.resize",
    "pool.ceiling",
    "config.reload",
    "intent.success",
    "intent.failed",
    "intent.skipped",
    "intent.retry",
    "intent.changed",
    "intent.vanished",
    "intent.move_failed",
    "porch.reaped",
    "cleanup.removed",
    "record.failed",
    "watcher.lost",
    "watcher.restored",
    "intake.paused",
    "intake.resumed",
    "fleet.broker",
    "fleet.broker_unreachable",
    "fleet.publish_failed",
    "fleet.republished",
    "fleet.adopted",
    "fleet.result_dropped",
    "fleet.worker.start",
    "fleet.worker.waiting",
    "fleet.worker.broker_down",
    "fleet.worker.broker_up",
    "fleet.worker.task",
    "fleet.worker.bad_task",
    "fleet.worker.lease_lost",
    "fleet.worker.publish_failed",
    "fleet.worker.stopping",
    "fleet.worker.stop",
    "fleet.worker.reaped",
)

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

_FORMATS = ("text", "json")

#: The fields every JSON line carries, in this order.
_CORE_FIELDS: tuple[str, ...] = ("intent", "sha256", "worker", "duration_ms", "outcome")
_RESERVED = frozenset(("ts", "level", "event", *_CORE_FIELDS))

# Attribute on a LogRecord holding the structured payload of log_event().
_ATTR = "conductor_fields"
# Marker attribute on the handler installed by setup_logging().
_HANDLER_MARK = "_conductor_loop_handler"

_logger = logging.getLogger(LOGGER_NAME)


def parse_level(level: str) -> int:
    """Map a level name (case-insensitive: debug, info, warning, error, critical) to its number."""
    key = level.strip().lower() if isinstance(level, str) else ""
    try:
        return _LEVELS[key]
    except KeyError:
        raise ValueError(
            f"invalid log level {level!r}: expected one of debug, info, warning, error, critical"
        ) from None


def _payload(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    """The event name and the ordered fields of a record (core fields first, None when unset)."""
    fields: dict[str, Any] | None = getattr(record, _ATTR, None)
    if fields is not None:
        return record.msg if isinstance(record.msg, str) else str(record.msg), dict(fields)
    out: dict[str, Any] = dict.fromkeys(_CORE_FIELDS)
    out["logger"] = record.name
    out["message"] = record.getMessage()
    return "log", out


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        return record.exc_text
    return None


_SIMPLE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


#: Printable characters that still end a bare token: a space, a quote, ``=``, a backslash.
_ENDS_TOKEN = re.compile(r'[ "=\\]')
#: Characters a key may not hold (each becomes ``_``): all but ASCII letters, digits, ``_``, ``.``, ``-``.
_NOT_KEY = re.compile(r"[^A-Za-z0-9_.-]")
#: Keys already made safe: the loop's keys are a small fixed set, so this stays small (and is capped).
_SAFE_KEYS: dict[str, str] = {}


def _quote(text: str) -> str:
    """``text`` as a single log token: bare when safe, else double-quoted with escapes.

    Bare means every character printable (``str.isprintable``) and none of ``' "=\\'``: two scans in C,
    not a Python test per character (docs/ARCHITECTURE.md, "where the time goes": a text log line went
    from 32 to 18 µs).
    """
    if text and text.isprintable() and _ENDS_TOKEN.search(text) is None:
        return text
    parts = ['"']
    for c in text:
        esc = _SIMPLE_ESCAPES.get(c)
        if esc is not None:
            parts.append(esc)
        elif c == " " or c.isprintable():
            parts.append(c)
        elif ord(c) <= 0xFFFF:
            parts.append(f"\\u{ord(c):04x}")
        else:
            parts.append(f"\\U{ord(c):08x}")
    parts.append('"')
    return "".join(parts)


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
    if isinstance(value, (int, str)):
        return _quote(str(value))
    if isinstance(value, (list, tuple, dict)):
        return _quote(json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")))
    return _quote(str(value))


def _safe_key(key: str) -> str:
    """``key`` with every character but ASCII letters, digits, ``_``, ``.`` and ``-`` made ``_``."""
    safe = _SAFE_KEYS.get(key)
    if safe is None:
        safe = _NOT_KEY.sub("_", key) or "_"
        if len(_SAFE_KEYS) < 256:
            _SAFE_KEYS[key] = safe
    return safe


class TextFormatter(logging.Formatter):
    """``TS LEVEL event key=value ...``, one line per record, values quoted and escaped."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as one line."""
        event, fields = _payload(record)
        tokens = [rfc3339(record.created), record.levelname, _quote(event)]
        for key, value in fields.items():
            if value is None:
                continue
            tokens.append(f"{_safe_key(key)}={_text_value(value)}")
        exc = _exception_text(record)
        if exc is not None:
            tokens.append(f"exc={_quote(exc)}")
        return " ".join(tokens)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts, level, event`` and the core fields, then extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as one JSON line."""
        event, fields = _payload(record)
        obj: dict[str, Any] = {
            "ts": rfc3339(record.created),
            "level": record.levelname.lower(),
            "event": event,
        }
        for key in _CORE_FIELDS:
            obj[key] = fields.pop(key, None)
        for key, value in fields.items():
            obj[key if key not in obj else f"extra_{key}"] = value
        exc = _exception_text(record)
        if exc is not None:
            obj["exc"] = exc
        return json.dumps(obj, ensure_ascii=True, default=str, separators=(",", ":"), allow_nan=True)


def setup_logging(fmt: str = "text", level: str = "info", stream: IO[str] | None = None) -> None:
    """Configure the ``conductor_loop`` logger: format ``text`` or ``json``, a level, a stream.

    Idempotent: a second call replaces the handler the first one installed. ``stream`` defaults to
    ``sys.stderr``. Raises :class:`ValueError` for an unknown format or level.
    """
    fmt_key = fmt.strip().lower() if isinstance(fmt, str) else ""
    if fmt_key not in _FORMATS:
        raise ValueError(f"invalid log format {fmt!r}: expected text or json")
    levelno = parse_level(level)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt_key == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    for old in list(_logger.handlers):
        if getattr(old, _HANDLER_MARK, False):
            _logger.removeHandler(old)
            old.close()
    _logger.addHandler(handler)
    _logger.setLevel(levelno)
    _logger.propagate = False


def log_event(
    event: str,
    *,
    level: int = logging.INFO,
    intent: str | None = None,
    sha256: str | None = None,
    worker: int | str | None = None,
    duration_ms: float | None = None,
    outcome: str | None = None,
    **fields: Any,
) -> None:
    """Emit one structured record for ``event`` (see :data:`EVENTS`) with the given fields.

    ``intent`` is the intent's file name (never its content). Extra keyword fields (``message``,
    ``moved_to``, ``correlation_id``, ``count``, ``reason``...) follow the standard ones; an extra
    field named like a standard key (``ts``) is renamed ``extra_<name>``.
    """
    if not _logger.isEnabledFor(level):
        return
    payload: dict[str, Any] = {
        "intent": intent,
        "sha256": sha256,
        "worker": worker,
        "duration_ms": round(duration_ms, 3) if isinstance(duration_ms, float) else duration_ms,
        "outcome": outcome,
    }
    for key, value in fields.items():
        payload[f"extra_{key}" if key in _RESERVED else key] = value
    for key, value in payload.items():
        if isinstance(value, str) and not value.isascii():
            payload[key] = printable(value)
    _logger.log(level, event, extra={_ATTR: payload})


def printable(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name (surrogate escapes) shown as ``\\xff``, so that a
    hostile name can always be written to a log, a status file or a terminal."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
