"""Structured logging: JSON lines, text escaping, levels."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from conductor_loop.logs import EVENTS, LOGGER_NAME, log_event, parse_level, setup_logging

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(autouse=True)
def _restore_logger() -> Iterator[None]:
    logger = logging.getLogger(LOGGER_NAME)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in handlers:
        logger.addHandler(h)
    logger.setLevel(level)
    logger.propagate = propagate


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_have_all_fields() -> None:
    out = io.StringIO()
    setup_logging("json", "info", out)
    log_event(
        "intent.success",
        intent="intent-a.json",
        sha256="ab" * 32,
        worker=2,
        duration_ms=3.14159,
        outcome="success",
        moved_to="processed/intent-a.json",
        correlation_id="corr-1",
    )
    log_event("loop.start", workers=4, once=False)
    first, second = json_lines(out)
    assert list(first)[:8] == ["ts", "level", "event", "intent", "sha256", "worker", "duration_ms", "outcome"]
    assert first["level"] == "info"
    assert first["event"] == "intent.success"
    assert first["intent"] == "intent-a.json"
    assert first["sha256"] == "ab" * 32
    assert first["worker"] == 2
    assert first["duration_ms"] == 3.142
    assert first["outcome"] == "success"
    assert first["moved_to"] == "processed/intent-a.json"
    assert first["correlation_id"] == "corr-1"
    ts = first["ts"]
    assert isinstance(ts, str)
    assert TS_RE.match(ts)
    parsed = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - parsed).total_seconds()) < 300
    # Core keys are always there, null when not given.
    assert second["event"] == "loop.start"
    for key in ("intent", "sha256", "worker", "duration_ms", "outcome"):
        assert key in second
        assert second[key] is None
    assert second["workers"] == 4
    assert second["once"] is False


def test_json_hostile_name_stays_on_one_line() -> None:
    out = io.StringIO()
    setup_logging("json", "info", out)
    name = 'intent-x.json\n{"event":"intent.success","forged":true}\r\u2028\u0085'
    log_event("intent.failed", level=logging.WARNING, intent=name, outcome="failed", message="bad\nthing")
    text = out.getvalue()
    assert text.count("\n") == 1
    assert len(text.splitlines()) == 1  # also no Unicode line separators left raw
    (obj,) = json_lines(out)
    assert obj["intent"] == name
    assert obj["level"] == "warning"
    assert obj["message"] == "bad\nthing"


def test_text_format_and_escaping() -> None:
    out = io.StringIO()
    setup_logging("text", "debug", out)
    log_event(
        "intent.success",
        intent="intent-a.json",
        sha256="ab12",
        worker=2,
        duration_ms=3.1,
        outcome="success",
        moved_to="processed/intent-a.json",
    )
    hostile = "intent-evil.json\n2026-01-01T00:00:00.000Z INFO intent.success intent=forged"
    log_event(
        "intent.failed", level=logging.WARNING, intent=hostile, message='has "quotes" and = sign', count=0
    )
    log_event("intent.skipped", intent="a b\tc\x1b[31m\\", outcome="skipped")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = lines
    ts, rest = first.split(" ", 1)
    assert TS_RE.match(ts)
    assert rest == (
        "INFO intent.success intent=intent-a.json sha256=ab12 worker=2 duration_ms=3.1 outcome=success "
        "moved_to=processed/intent-a.json"
    )
    assert second.split(" ", 1)[1] == (
        "WARNING intent.failed "
        'intent="intent-evil.json\\n2026-01-01T00:00:00.000Z INFO intent.success intent=forged" '
        'message="has \\"quotes\\" and = sign" count=0'
    )
    assert third.split(" ", 1)[1] == 'INFO intent.skipped intent="a b\\tc\\u001b[31m\\\\" outcome=skipped'


HOSTILE_TOKENS = [
    "",
    "plain-name.json",
    "a b",
    'say "hi"',
    "k=v",
    "back\\slash",
    "line\nbreak",
    "cr\rhere",
    "tab\there",
    "esc\x1b[31m",
    "sep\u2028para\u2029",
    "nb\u00a0sp",
    "zero\u200bwidth",
    "lone\ud800surrogate",
    "emoji-\U0001f600.json",
    "caf\u00e9.json",
]


def reference_is_bare(text: str) -> bool:
    """The bare-token rule, one character at a time: printable and none of space, quote, =, backslash."""
    return bool(text) and all(c.isprintable() and c not in ' "=\\' for c in text)


def reference_safe_key(key: str) -> str:
    """The key rule, one character at a time: ASCII letters, digits, _, . and - kept, all else _."""
    return "".join(c if (c.isascii() and (c.isalnum() or c in "_.-")) else "_" for c in key) or "_"


@pytest.mark.parametrize("text", HOSTILE_TOKENS)
def test_token_rules_match_per_character_reference(text: str) -> None:
    from conductor_loop.logs import _quote, _safe_key

    quoted = _quote(text)
    assert (quoted == text) == reference_is_bare(text)
    if quoted != text:
        assert quoted.startswith('"') and quoted.endswith('"') and quoted.isprintable()
    assert _safe_key(text) == reference_safe_key(text)
    assert _safe_key(text) == reference_safe_key(text)  # the cached answer is the same


def test_level_filtering_and_names() -> None:
    out = io.StringIO()
    setup_logging("json", "WARNING", out)
    log_event("intent.success", intent="a.json")
    log_event("worker.start", level=logging.DEBUG, worker=1)
    log_event("intent.failed", level=logging.WARNING, intent="b.json")
    log_event("watcher.lost", level=logging.ERROR, reason="gone")
    assert [o["event"] for o in json_lines(out)] == ["intent.failed", "watcher.lost"]
    assert [o["level"] for o in json_lines(out)] == ["warning", "error"]

    out2 = io.StringIO()
    setup_logging("json", "Debug", out2)
    log_event("worker.start", level=logging.DEBUG, worker=1)
    assert [o["event"] for o in json_lines(out2)] == ["worker.start"]
    # The first stream no longer receives anything: the handler was replaced, not added.
    assert len(json_lines(out)) == 2
    # Count only the handlers setup_logging installs: pytest's own capture handlers may sit beside them.
    ours = [h for h in logging.getLogger(LOGGER_NAME).handlers if getattr(h, "_conductor_loop_handler", False)]
    assert len(ours) == 1


@pytest.mark.parametrize("bad", ["verbose", "", "10", "inf o"])
def test_bad_level_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid log level"):
        setup_logging("text", bad, io.StringIO())


def test_bad_format_rejected() -> None:
    with pytest.raises(ValueError, match="invalid log format"):
        setup_logging("yaml", "info", io.StringIO())


def test_parse_level() -> None:
    assert parse_level("debug") == logging.DEBUG
    assert parse_level("INFO") == logging.INFO
    assert parse_level("Warning") == logging.WARNING
    assert parse_level("error") == logging.ERROR


def test_child_logger_records_and_exceptions() -> None:
    out = io.StringIO()
    setup_logging("json", "info", out)
    child = logging.getLogger(f"{LOGGER_NAME}.pool")
    child.info("spawned %d workers", 3)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        child.exception("failed\nhard")
    first, second = json_lines(out)
    assert first["event"] == "log"
    assert first["logger"] == f"{LOGGER_NAME}.pool"
    assert first["message"] == "spawned 3 workers"
    assert second["level"] == "error"
    assert "RuntimeError: boom" in str(second["exc"])
    assert len(out.getvalue().splitlines()) == 2

    text = io.StringIO()
    setup_logging("text", "info", text)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        child.exception("failed")
    (line,) = text.getvalue().splitlines()
    assert "event" not in line.split()[2]
    assert line.split()[2] == "log"
    assert "RuntimeError: boom" in line


def test_reserved_extra_field_does_not_clobber() -> None:
    out = io.StringIO()
    setup_logging("json", "info", out)
    log_event("loop.stop", ts="not a time", processed=3)
    (obj,) = json_lines(out)
    assert isinstance(obj["ts"], str)
    assert TS_RE.match(obj["ts"])
    assert obj["extra_ts"] == "not a time"
    assert obj["processed"] == 3


def test_does_not_touch_root_logger() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    setup_logging("text", "info", io.StringIO())
    assert root.handlers == before


def test_event_list_is_documented() -> None:
    from pathlib import Path

    guide = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    for event in EVENTS:
        assert f"`{event}`" in guide, event
