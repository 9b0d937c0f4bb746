"""File-name rules of the handoff directory (SPEC §2).

Which names are intents, which are never touched, and how the loop derives its own names
(status files, error logs) without ever exceeding the filesystem's NAME_MAX.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable

#: Longest file name (in bytes) that Linux filesystems accept.
NAME_MAX = 255

#: Sub-directories of the handoff directory owned by the loop.
PROCESSED = "processed"
FAILED = "failed"
STATUS = "status"
STATE_DIR = ".conductor"

STATUS_SUFFIX = ".status"
ERROR_LOG_SUFFIX = ".error.log"

_OWNED = frozenset((PROCESSED, FAILED, STATUS, STATE_DIR))

DEFAULT_PATTERNS: tuple[str, ...] = ("intent-*.json",)

# Editor swap files, partial downloads and temp names are never intents, whatever the pattern says.
_TEMP_SUFFIXES = (".tmp", ".partial", ".part", ".swp", ".swx", "~", ".crdownload")


class PatternMatcher:
    """Matches base names against ``--pattern`` globs (compiled once; case-sensitive like the shell)."""

    __slots__ = ("_regex", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns) or DEFAULT_PATTERNS
        self._regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns))

    def is_intent(self, name: str) -> bool:
        """True when ``name`` matches a pattern and is not hidden, a temp name or a loop-owned name."""
        if not name or name[0] == "." or "/" in name or name.endswith(_TEMP_SUFFIXES):
            return False
        if name in _OWNED:
            return False
        return self._regex.match(name) is not None


def fit_name(name: str, suffix: str = "", limit: int = NAME_MAX) -> str:
    """Return ``name + suffix``, shortened with a hash of the full name when it would exceed ``limit`` bytes.

    The result keeps a readable prefix of ``name``, then ``~`` and 16 hex digits of the SHA-256 of the
    full name, then ``suffix``: two different long names never map to the same result.
    """
    full = name + suffix
    raw = full.encode("utf-8", "surrogateescape")
    if len(raw) <= limit:
        return full
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    tail = "~" + digest + suffix
    room = limit - len(tail.encode("utf-8", "surrogateescape"))
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a name within {limit} bytes")
    prefix = name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return prefix + tail


def status_name(intent_name: str) -> str:
    """Name of the status file of an intent (``intent-a.json`` → ``intent-a.json.status``)."""
    return fit_name(intent_name, STATUS_SUFFIX)


def error_log_name(filed_name: str) -> str:
    """Name of the error log beside a failed intent filed as ``filed_name``."""
    return fit_name(filed_name, ERROR_LOG_SUFFIX)

