"""Intent validation: bytes → :class:`Intent` or :class:`ValidationError` (README, "What it does").

The checks run in this order and the first failure wins, so the reason is always one clear line. The
first five are the loop's safety rules and apply whatever ``--intent-schema`` says:

1. regular file, at most ``max_size`` bytes (:func:`read_intent`, via the Rust core: never follows a
   symlink, never blocks on a FIFO);
2. strict UTF-8 (a byte-order mark is rejected: RFC 8259 forbids emitting one and the Go loop's
   ``encoding/json`` refuses it too);
3. JSON (RFC 8259 only: ``NaN``/``Infinity`` constants and duplicate object keys are rejected, since
   different parsers would disagree about what such a document means); the top level must be an object;
4. nesting depth at most 64 (checked without recursion: a 100,000-deep document gives the depth error);
5. no lone surrogate escape (``"\\udfff"``) in any string or key: such a string is not Unicode text and
   could never be written to the status file or the state; the reason names its JSONPath;
6. the intent schema chosen by ``--intent-schema`` (:mod:`conductor_loop.intent_schema`: ``builtin``,
   ``go-compat`` or the operator's JSON Schema file), which also gives the :class:`Intent` record.

This is the hot path of the loop: one call per intent, thousands a second.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from typing import Any

from conductor_loop import _core
from conductor_loop.intent import Intent
from conductor_loop.intent_schema import BUILTIN, IntentSchema, Rejected, json_path
from conductor_loop.intent_schema.base import json_type

__all__ = [
    "MAX_DEPTH",
    "Intent",
    "IntentVanished",
    "ValidationError",
    "parse_intent",
    "read_intent",
    "validate_path",
]

MAX_DEPTH = 64
"""Deepest JSON nesting accepted (the top-level object is depth 1)."""

REASON_MAX = 400
"""Longest rejection reason kept (values quoted in it are cut shorter still)."""

MAX_CONTAINERS = 10_000
"""Most JSON objects and arrays in one intent (counted as ``{`` and ``[`` bytes, strings included)."""

MAX_ITEMS = 100_000
"""Most values in one intent (counted as ``,`` bytes, strings included)."""

MAX_INT_DIGITS = 30
"""Longest integer literal accepted; longer ones are no intent's business."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class ValidationError(Exception):
    """An intent was rejected. ``reason`` is one clear line saying what is wrong.

    ``sha256`` and ``size`` describe the file content when it could be read (``None`` otherwise), so a
    caller can record the hash of a rejected intent.
    """

    def __init__(self, reason: str, *, sha256: str | None = None, size: int | None = None) -> None:
        if len(reason) > REASON_MAX:  # a hostile intent must not fill logs, status files and error logs
            reason = f"{reason[:REASON_MAX]}… (reason cut, {len(reason)} characters)"
        super().__init__(reason)
        self.reason = reason
        self.sha256 = sha256
        self.size = size


class IntentVanished(ValidationError, FileNotFoundError):
    """The intent file was gone when it was to be read (a ``FileNotFoundError`` too, so callers can tell
    "vanished, nothing to file" apart from "invalid")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.errno = errno.ENOENT


def _no_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name} is not a valid JSON value")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"not JSON: duplicate key {key!r}")
            seen.add(key)
    return obj


def _int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"not an intent: an integer with more than {MAX_INT_DIGITS} digits")
    return int(literal)


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_no_constant, parse_int=_int)


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _deep_prefix(text: str) -> bool:
    """True when the first 64 KiB of ``text`` already nest deeper than :data:`MAX_DEPTH` (strings skipped)."""
    depth = 0
    for m in _TOKEN.finditer(text, 0, 65536):
        piece = m.group()  # a whole string (skipped) or one bracket
        if piece in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif piece in ("]", "}"):
            depth -= 1
    return False


def _too_big(text: str) -> str | None:
    """Why ``text`` would cost too much memory to parse (a 10 MiB ``[{},{},…]`` is 500 MB of objects)."""
    containers = text.count("{") + text.count("[")
    if containers > MAX_CONTAINERS:
        if _deep_prefix(text):
            return f"JSON nested deeper than {MAX_DEPTH} levels"
        return f"not an intent: too many JSON objects and arrays ({containers} brackets, at most {MAX_CONTAINERS})"
    items = text.count(",")
    if items > MAX_ITEMS:
        return f"not an intent: too many JSON values ({items} commas, at most {MAX_ITEMS})"
    return None


def _too_deep(value: Any) -> bool:
    """True when ``value`` nests containers deeper than :data:`MAX_DEPTH` (iterative, no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def _lone_surrogate(value: Any) -> str | None:
    """The JSONPath of the first string or key holding a lone surrogate, or ``None`` (iterative)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return json_path(path)
            continue
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in reversed(list(items)):
            if isinstance(key, str) and _SURROGATE.search(key):
                return json_path(path) + f" (in the key {json.dumps(key)})"
            stack.append((child, (*path, key)))
    return None


def _parse_json(text: str) -> dict[str, Any]:
    """The safety rules on decoded text: bounded size of the parse, JSON, an object, depth, no lone
    surrogates."""
    too_big = _too_big(text)
    if too_big is not None:
        raise ValidationError(too_big)
    try:
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValidationError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # from the hooks: NaN/Infinity, duplicate keys
        raise ValidationError(str(exc)) from None
    # A document with at most 64 brackets cannot nest deeper than 64: skip the walk on the hot path.
    if isinstance(data, (dict, list)) and text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(data):
        raise ValidationError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise ValidationError(f"not an intent: the top level is a JSON {json_type(data)}, not an object")
    # UTF-8 text cannot hold a surrogate: only a \uD800-\uDFFF escape makes one. Walk only then.
    if _SURROGATE_ESCAPE.search(text):
        where = _lone_surrogate(data)
        if where is not None:
            raise ValidationError(
                f"lone surrogate escape at {where}: a \\uD800-\\uDFFF escape without its pair is not text"
            )
    return data


def parse_intent(content: bytes, schema: IntentSchema = BUILTIN) -> Intent:
    """Validate intent file content against the safety rules and ``schema``; raise :class:`ValidationError`."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"not UTF-8: {exc.reason} at offset {exc.start}") from None
    if not text.strip():
        raise ValidationError("not JSON: the file is empty")
    if text[0] == "\ufeff":
        raise ValidationError("not JSON: starts with a byte-order mark (U+FEFF)")
    data = _parse_json(text)
    try:
        return schema.check(data)
    except Rejected as exc:
        raise ValidationError(exc.reason) from None


def _file_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def read_intent(
    path: str, max_size: int, schema: IntentSchema = BUILTIN
) -> tuple[str, int, bytes, Intent]:
    """Read ``path`` once, hash it and validate it against ``schema``: ``(sha256 hex, size, content, intent)``.

    The bytes hashed are the bytes validated. Raises :class:`ValidationError` (with ``sha256``/``size``
    set when the content was read) for any problem, including I/O errors; a missing file raises
    :class:`IntentVanished`, which is both a ``ValidationError`` and a ``FileNotFoundError``.
    """
    try:
        digest, content = _core.sha256_read(path, max_size)
    except _core.NotRegularFile:
        try:
            kind = _file_kind(os.lstat(path).st_mode)
        except OSError:
            kind = "special file"
        raise ValidationError(f"not a regular file ({kind})") from None
    except _core.FileTooLarge:
        try:
            size: int | None = os.lstat(path).st_size
        except OSError:
            size = None
        what = f"file is {size} bytes" if size is not None else "file is"
        raise ValidationError(f"{what}, larger than --max-file-size {max_size}", size=size) from None
    except OSError as exc:
        detail = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno == errno.ENOENT:
            raise IntentVanished(f"cannot read: {detail}") from None
        raise ValidationError(f"cannot read: {detail}") from None
    try:
        intent = parse_intent(content, schema)
    except ValidationError as exc:
        exc.sha256 = digest
        exc.size = len(content)
        raise
    return digest, len(content), content, intent


def validate_path(path: str, max_size: int, schema: IntentSchema = BUILTIN) -> list[str]:
    """Problems with the intent file at ``path`` (empty when valid), for ``conductor-loop validate``."""
    try:
        read_intent(path, max_size, schema)
    except ValidationError as exc:
        return [exc.reason]
    return []
