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
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from conductor_loop.clock import parse_rfc3339, rfc3339
from conductor_loop.jsonstream import InvalidJson, NoSuchObject, object_members

log = logging.getLogger(__name__)

_SHA_RE = re.compile(r"^[0-9a-fA-F]{64}$")


ProgressFn = Callable[[int], None]
"""``progress(bytes_read)``, called as a Go state file is read."""


def iter_go_rows(json_path: str, now: float, progress: ProgressFn | None = None) -> Iterator[tuple[Any, ...]]:
    """Rows ``(path, sha256, size, status, when, message)`` of a Go state file, streamed.

    Go status ``processed`` becomes ``success`` and ``failed`` stays ``failed``. Malformed entries are
    skipped with a warning; a file that is not a Go state file at all raises ``ValueError`` (possibly after
    rows were yielded: the caller imports them in one transaction, see :mod:`conductor_loop.jsonstream`).
    """
    try:
        fh = open(json_path, "rb")
    except OSError as exc:
        raise ValueError(f"{json_path}: cannot read: {exc.strerror or exc}") from exc
    skipped = 0
    message = f"imported from Go state {json_path}"
    with fh:
        try:
            for key, entry in object_members(fh, "states", progress):
                try:
                    row = _go_entry_to_row(key, entry, now, message)
                except (ValueError, TypeError, OverflowError) as exc:
                    skipped += 1
                    log.warning("%s: skipping state entry %r: %s", json_path, key, exc)
                    continue
                yield row
        except InvalidJson as exc:
            raise ValueError(f"{json_path}: not a Go state file: not valid JSON ({exc})") from exc
        except NoSuchObject as exc:
            raise ValueError(f"{json_path}: not a Go state file: no 'states' object") from exc
        except OSError as exc:
            raise ValueError(f"{json_path}: cannot read: {exc.strerror or exc}") from exc
    if skipped:
        log.warning("%s: %d malformed entries skipped", json_path, skipped)


GoRow = tuple[str, str | None, int | None, float | None, str]
"""A finished row as exported: ``(path, sha256, size, processed_at, status)``."""

#: Entries per piece of :class:`GoStateText` (about 300 bytes each).
_ENTRIES_PER_PIECE = 2048


class GoStateText:
    """The Go document of finished rows as text, in pieces, never the whole document in memory.

    Byte for byte ``json.dumps(doc, indent=2, sort_keys=True) + "\n"`` of ``{"saved_at", "states":
    {path: {file_path, processed_at, sha256, size, status}}, "version": "1.0"}`` (the Go loop's own
    layout), for ``rows`` in path order. ``entries`` counts the rows once iterated.
    """

    def __init__(self, rows: Iterable[GoRow], now: float) -> None:
        self.rows = rows
        self.now = now
        self.entries = 0

    def __iter__(self) -> Iterator[str]:
        head = '{\n  "saved_at": ' + json.dumps(rfc3339(self.now, digits=6)) + ',\n  "states": {'
        piece: list[str] = [head]
        for row in self.rows:
            piece.append(("\n" if self.entries == 0 else ",\n") + _go_entry_text(row))
            self.entries += 1
            if len(piece) >= _ENTRIES_PER_PIECE:
                yield "".join(piece)
                piece = []
        piece.append("\n  },\n" if self.entries else "},\n")
        piece.append('  "version": "1.0"\n}\n')
        yield "".join(piece)


def _go_entry_text(row: GoRow) -> str:
    """One entry of :class:`GoStateText`, at the depth ``json.dumps(indent=2)`` puts it."""
    path, sha, size, processed_at, status = row
    key = json.dumps(path)
    size = size if size is not None else 0
    return (
        f'    {key}: {{\n      "file_path": {key},\n'
        f'      "processed_at": "{rfc3339(processed_at if processed_at is not None else 0.0, digits=6)}",\n'
        f'      "sha256": {json.dumps(sha or "")},\n'
        f'      "size": {size if type(size) is int else json.dumps(size)},\n'
        f'      "status": "{"failed" if status == "failed" else "processed"}"\n    }}'
    )


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
