"""The handoff layout: every sub-path, the one name rule, and the dedupe rule.

A :class:`Layout` owns the paths of one handoff directory (``processed/``, ``failed/``, ``status/``,
``.conductor/lock``, ``.conductor/state.db``), decides which names are intents (the same rule for the
watcher's events, the directory scan and ``status``), names status files and error logs, says where
an outcome is filed, and reads status files. The dedupe rule (README, "Dedupe, retry and order")
lives here too, for the loop, ``retry`` and start-up recovery alike.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from conductor_loop import _core
from conductor_loop.clock import rfc3339
from conductor_loop.records import FINAL_STATUSES, Destination, Outcome

#: Longest file name (in bytes) the loop creates; the Rust core shares it.
NAME_MAX: int = _core.NAME_MAX

#: Sub-directories and files of the handoff directory owned by the loop.
PROCESSED = Destination.PROCESSED.value
FAILED = Destination.FAILED.value
STATUS = "status"
STATE_DIR = ".conductor"
LOCK_NAME = "lock"
DB_NAME = "state.db"

STATUS_SUFFIX = ".status"
ERROR_LOG_SUFFIX = ".error.log"

DEFAULT_PATTERNS: tuple[str, ...] = ("intent-*.json",)

#: Editor swap files, partial downloads and temp names are never intents, whatever the pattern says.
TEMP_SUFFIXES: tuple[str, ...] = (".tmp", ".partial", ".part", ".swp", ".swx", "~", ".crdownload")

_OWNED = frozenset((PROCESSED, FAILED, STATUS, STATE_DIR))

#: One :class:`~conductor_loop._core.Anchor` per handoff and process (a descriptor is never pickled); a
#: process that handles many handoffs (the tests, an operator script) keeps only the last few open.
_ANCHORS: dict[str, _core.Anchor] = {}
_ANCHORS_KEPT = 8


class NameRule:
    """The one rule for intent names: matches ``--pattern``, not hidden, not a temp name, not the loop's own.

    Applied to the watcher's events and to directory scans alike (the Rust watcher reports every name).
    """

    __slots__ = ("_regex", "patterns")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns) or DEFAULT_PATTERNS
        self._regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns))

    def _candidate(self, name: str) -> bool:
        if not name or name[0] == "." or "/" in name or name.endswith(TEMP_SUFFIXES):
            return False
        if name in _OWNED:
            return False
        return self._regex.match(name) is not None

    def is_intent(self, name: str) -> bool:
        """True when ``name`` (a base name) may be taken as an intent."""
        return self._candidate(name) and _utf8(name)

    def is_hostile(self, name: str) -> bool:
        """True for a name that would be an intent's but is not valid UTF-8 (README, "Files and
        directories"): such a file is filed in ``failed/`` unread (:mod:`conductor_loop.quarantine`)."""
        return not _utf8(name) and self._candidate(name)


def _utf8(name: str) -> bool:
    """The name (as ``os.listdir`` gives it, bytes that are not UTF-8 as surrogate escapes) is UTF-8."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def fit_name(name: str, suffix: str = "", limit: int = NAME_MAX) -> str:
    """``name + suffix``, shortened with a hash of the full name when longer than ``limit`` bytes.

    The one name-shortening rule is the Rust core's (:func:`conductor_loop._core.fit_name`): a readable
    prefix of ``name``, ``~``, 16 hex digits of its SHA-256, then ``suffix``.
    """
    return _core.fit_name(name, suffix, limit)


def status_name(intent_name: str) -> str:
    """Name of the status file of an intent (``intent-a.json`` → ``intent-a.json.status``)."""
    return fit_name(intent_name, STATUS_SUFFIX)


def error_log_name(filed_name: str) -> str:
    """Name of the error log beside a failed intent filed as ``filed_name``."""
    return fit_name(filed_name, ERROR_LOG_SUFFIX)


#: How much of a status file is read.
STATUS_READ_LIMIT = 1 << 20


def read_status_files(paths: list[str]) -> list[dict[str, Any] | None]:
    """The JSON object of each status file (at most :data:`STATUS_READ_LIMIT` read; read in one batch, never
    through a link, never blocking on a FIFO), or None when missing, unreadable or not an object."""
    docs: list[dict[str, Any] | None] = []
    for data in _core.read_files(paths, STATUS_READ_LIMIT) if paths else ():
        try:
            doc = json.loads(data) if data is not None else None
        except ValueError:
            doc = None
        docs.append(doc if isinstance(doc, dict) else None)
    return docs


def read_status_file(path: str) -> dict[str, Any] | None:
    """The JSON object of one status file (:func:`read_status_files`)."""
    return read_status_files([path])[0]


class RowLike(Protocol):
    """What the dedupe rule reads of a state row."""

    status: str
    sha256: str | None
    processed_at: float | None
    filed_at: float | None


def filed_run(row: RowLike | None, sha: str | None = None) -> bool:
    """The row records a finished run that was filed (of content ``sha``, when given)."""
    return row is not None and row.filed_at is not None and (sha is None or row.sha256 == sha)


def dedupe_basis(row: RowLike | None) -> tuple[str, float | None] | None:
    """(sha256, when) of the content that an intent at this row's path would be skipped for, if any.

    Identical content already processed with success (or skipped) and filed is not run again; a failed
    row never dedupes.
    """
    if row is None or row.sha256 is None or not filed_run(row):
        return None
    if row.status not in (Outcome.SUCCESS, Outcome.SKIPPED):
        return None
    return row.sha256, row.processed_at


def deduped(row: RowLike | None, sha: str) -> bool:
    """True when the loop would skip content ``sha`` at this row's path as a duplicate."""
    basis = dedupe_basis(row)
    return basis is not None and basis[0] == sha


def duplicate_message(sha: str, when: float | None) -> str:
    """What a skipped duplicate's status says: which content, and when it was processed with success."""
    earlier = rfc3339(when) if when else "an earlier run"
    return f"identical content (sha256 {sha[:12]}) already processed with success at {earlier}"


@dataclass(frozen=True)
class Layout:
    """The paths and name rules of one handoff directory (absolute)."""

    root: str
    patterns: tuple[str, ...] = ()
    rule: NameRule = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", os.path.abspath(self.root))
        object.__setattr__(self, "rule", NameRule(self.patterns))

    @property
    def processed(self) -> str:
        """``processed/``."""
        return os.path.join(self.root, PROCESSED)

    @property
    def failed(self) -> str:
        """``failed/``."""
        return os.path.join(self.root, FAILED)

    @property
    def status(self) -> str:
        """``status/``."""
        return os.path.join(self.root, STATUS)

    @property
    def state_dir(self) -> str:
        """``.conductor/`` (mode 0700)."""
        return os.path.join(self.root, STATE_DIR)

    @property
    def lock(self) -> str:
        """``.conductor/lock``."""
        return os.path.join(self.root, STATE_DIR, LOCK_NAME)

    @property
    def db(self) -> str:
        """``.conductor/state.db``."""
        return os.path.join(self.root, STATE_DIR, DB_NAME)

    @property
    def filing_dirs(self) -> tuple[str, str]:
        """``processed/`` and ``failed/``."""
        return self.processed, self.failed

    @property
    def anchor(self) -> _core.Anchor:
        """The handoff held open (one per process, opened on first use): every write and move of the loop
        below it goes through it and never follows a symbolic link there (docs/SECURITY.md)."""
        anchor = _ANCHORS.get(self.root)
        if anchor is None:
            anchor = _core.Anchor(self.root)
            while len(_ANCHORS) >= _ANCHORS_KEPT:
                del _ANCHORS[next(iter(_ANCHORS))]
            _ANCHORS[self.root] = anchor
        return anchor

    def is_intent(self, name: str) -> bool:
        """The one name rule (see :class:`NameRule`)."""
        return self.rule.is_intent(name)

    def intent_path(self, path: str) -> bool:
        """``path`` is directly in the handoff and its name is an intent name."""
        return os.path.dirname(path) == self.root and self.rule.is_intent(os.path.basename(path))

    def destination(self, outcome: Outcome | str) -> str:
        """The directory an intent with a final ``outcome`` is filed in."""
        return self.failed if Outcome(outcome) is Outcome.FAILED else self.processed

    def planned(self, path: str, outcome: Outcome | str) -> str:
        """Where the intent at ``path`` goes when nothing is in the way."""
        return os.path.join(self.destination(outcome), os.path.basename(path))

    def status_path(self, intent_name: str) -> str:
        """``status/<intent_name>.status``."""
        return os.path.join(self.status, status_name(intent_name))

    def error_log_path(self, filed_name: str) -> str:
        """``failed/<filed_name>.error.log``."""
        return os.path.join(self.failed, error_log_name(filed_name))

    def final_statuses(self, intent_names: list[str]) -> list[tuple[str, str, str] | None]:
        """For each intent, (status, sha256, message) of its status file when that records a final outcome."""
        docs = read_status_files([self.status_path(n) for n in intent_names])
        return [
            (str(doc["status"]), str(doc["sha256"]), str(doc.get("message", "")))
            if doc is not None and doc.get("status") in FINAL_STATUSES and isinstance(doc.get("sha256"), str)
            else None
            for doc in docs
        ]

    def scan(self) -> list[str]:
        """Paths of the intent candidates directly in the handoff (raises ``OSError``)."""
        return self.scan_all()[0]

    def scan_all(self) -> tuple[list[str], list[str]]:
        """Paths of the intent candidates and of the hostile names directly in the handoff (``OSError``)."""
        intents: list[str] = []
        hostile: list[str] = []
        with os.scandir(self.root) as it:
            for entry in it:
                if self.rule.is_intent(entry.name):
                    intents.append(entry.path)
                elif self.rule.is_hostile(entry.name):
                    hostile.append(entry.path)
        return intents, hostile

    def has_candidate(self) -> bool:
        """True when the handoff holds an intent candidate (listed up to the first; False when it cannot be)."""
        try:
            with os.scandir(self.root) as it:
                return any(self.rule.is_intent(entry.name) for entry in it)
        except OSError:
            return False

    def make_dirs(self, out: str | None = None) -> None:
        """Create the layout (and ``out``); raises ``OSError``."""
        for d in (self.root, self.processed, self.failed, self.status, *((out,) if out else ())):
            os.makedirs(d, exist_ok=True)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)

    def symlinked(self) -> str | None:
        """The first of the loop's own directories (or its lock) that is a symbolic link, if any: the loop
        never writes through one (anyone who may drop intents could otherwise redirect its writes)."""
        for d in (self.processed, self.failed, self.status, self.state_dir, self.lock, self.db):
            try:
                if stat.S_ISLNK(os.lstat(d).st_mode):
                    return d
            except (FileNotFoundError, NotADirectoryError):  # not there (yet), or the handoff is a file
                continue
        return None

    def unwritable(self) -> str | None:
        """The first loop directory that is not writable, if any."""
        for d in (self.root, self.processed, self.failed, self.status):
            if not os.access(d, os.W_OK | os.X_OK):
                return d
        return None
