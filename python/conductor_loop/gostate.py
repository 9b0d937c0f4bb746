"""The Go loop's ``.conductor-state.json`` format: reading it into rows, writing rows out as it.

``{"version", "saved_at", "states": {path: {file_path, sha256, size, processed_at, status}}}`` with Go
status ``processed`` (our ``success`` and ``skipped``) or ``failed``; rows are keyed by the intent's
absolute path (README, "The state").
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from typing import Any

from conductor_loop.clock import parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

_SHA_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def read_go_state(json_path: str, now: float) -> list[tuple[Any, ...]]:
    """Rows ``(path, sha256, size, status, when, message)`` of a Go state file.

    Go status ``processed`` becomes ``success`` and ``failed`` stays ``failed``. Malformed entries are
    skipped with a warning; a file that is not a Go state file at all raises ``ValueError``.
    """
    try:
        with open(json_path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ValueError(f"{json_path}: cannot read: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{json_path}: not a Go state file: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("states"), dict):
        raise ValueError(f"{json_path}: not a Go state file: no 'states' object")
    rows: list[tuple[Any, ...]] = []
    skipped = 0
    message = f"imported from Go state {json_path}"
    for key, entry in doc["states"].items():
        try:
            rows.append(_go_entry_to_row(key, entry, now, message))
        except (ValueError, TypeError, OverflowError) as exc:
            skipped += 1
            log.warning("%s: skipping state entry %r: %s", json_path, key, exc)
    if skipped:
        log.warning("%s: %d malformed entries skipped", json_path, skipped)
    return rows


def go_state_doc(rows: Iterable[tuple[str, str | None, int | None, float | None, str]], now: float) -> dict[str, Any]:
    """The Go document of finished rows ``(path, sha256, size, processed_at, status)``."""
    states: dict[str, Any] = {}
    for path, sha, size, processed_at, status in rows:
        states[path] = {
            "file_path": path,
            "sha256": sha or "",
            "size": size if size is not None else 0,
            "processed_at": rfc3339(processed_at if processed_at is not None else 0.0, digits=6),
            "status": "failed" if status == "failed" else "processed",
        }
    return {"version": "1.0", "saved_at": rfc3339(now, digits=6), "states": states}


def _go_entry_to_row(key: Any, entry: Any, now: float, message: str) -> tuple[Any, ...]:
    if not isinstance(key, str) or not key:
        raise ValueError("key is not a path")
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    path = entry.get("file_path") or key
    if not isinstance(path, str):
        raise ValueError("file_path is not a string")
    path = os.path.normpath(path)
    sha = entry.get("sha256")
    if sha in (None, ""):
        sha = None
    elif not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise ValueError("sha256 is not a hex SHA-256")
    else:
        sha = sha.lower()
    size = entry.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError("size is not a non-negative integer")
    go_status = entry.get("status")
    if go_status == "processed":
        status = "success"
    elif go_status == "failed":
        status = "failed"
    else:
        raise ValueError(f"unknown status {go_status!r}")
    when = entry.get("processed_at")
    ts = now
    if isinstance(when, str) and when:
        ts = parse_rfc3339(when)
        if ts <= 0:  # Go's zero time
            ts = now
    return (path, sha, size, status, ts, message)
