"""Intent validation: bytes → :class:`Intent` or :class:`ValidationError` (README, "What it does").

The checks run in this order and the first failure wins, so the reason is always one clear line:

1. regular file, at most ``max_size`` bytes (:func:`read_intent`, via the Rust core: never follows a
   symlink, never blocks on a FIFO);
2. strict UTF-8 (a byte-order mark is rejected: RFC 8259 forbids emitting one and the Go loop's
   ``encoding/json`` refuses it too);
3. JSON (RFC 8259 only: ``NaN``/``Infinity`` constants and duplicate object keys are rejected, since
   different parsers would disagree about what such a document means); the top level must be an object;
4. nesting depth at most 64 (checked without recursion: a 100,000-deep document gives the depth error);
5. the intent schema (``schema/intent.schema.json``, draft-07, compiled once at import with
   ``fastjsonschema``; unknown top-level fields and missing required fields are named explicitly);
6. ``target`` and ``namespace`` are DNS-1123 labels (lowercase alphanumerics and ``-``, starting and
   ending alphanumeric, at most 63 characters), because they become directory and Kubernetes names.

This is the hot path of the loop: one call per intent, thousands a second.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import fastjsonschema

from conductor_loop import _core

MAX_DEPTH = 64
"""Deepest JSON nesting accepted (the top-level object is depth 1)."""

_SCHEMA: dict[str, Any] = json.loads(
    resources.files("conductor_loop").joinpath("schema/intent.schema.json").read_text(encoding="utf-8")
)
_VALIDATE = fastjsonschema.compile(_SCHEMA, use_default=False)  # data stays as parsed
_PROPERTIES: frozenset[str] = frozenset(_SCHEMA["properties"])
_REQUIRED: tuple[str, ...] = tuple(_SCHEMA["required"])
_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


class ValidationError(Exception):
    """An intent was rejected. ``reason`` is one clear line saying what is wrong.

    ``sha256`` and ``size`` describe the file content when it could be read (``None`` otherwise), so a
    caller can record the hash of a rejected intent.
    """

    def __init__(self, reason: str, *, sha256: str | None = None, size: int | None = None) -> None:
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


@dataclass(frozen=True, slots=True)
class Intent:
    """A validated intent. ``data`` is the whole parsed JSON object."""

    intent_type: str
    target: str
    namespace: str
    replicas: int
    priority: int = 5
    correlation_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


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


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_no_constant)


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


def _schema_reason(exc: Any) -> str:
    """One line for a fastjsonschema error, e.g. ``schema: replicas: must be <= 100``."""
    name: str = exc.name
    where = name[5:] if name.startswith("data.") else ("(top level)" if name == "data" else name)
    rule = exc.rule
    definition = exc.rule_definition
    value = exc.value
    if rule == "type":
        what = f"must be {definition}, got {_json_type(value)}"
    elif rule == "maximum":
        what = f"must be <= {definition}"
    elif rule == "minimum":
        what = f"must be >= {definition}"
    elif rule == "maxLength":
        what = f"must be at most {definition} characters"
    elif rule == "minLength":
        what = f"must be at least {definition} character{'s' if definition != 1 else ''}"
    elif rule == "enum":
        what = "must be one of " + ", ".join(repr(v) for v in definition)
    elif rule == "format" and definition == "date-time":
        what = "must be an RFC 3339 date-time (e.g. 2025-08-28T10:30:00Z)"
    else:
        message: str = exc.message
        what = message[len(name) + 1 :] if message.startswith(name + " ") else message
    return f"schema: {where}: {what}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _decode(content: bytes) -> Any:
    """UTF-8, then JSON (no NaN, no duplicate keys, at most 64 deep)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"not UTF-8: {exc.reason} at offset {exc.start}") from None
    if not text.strip():
        raise ValidationError("not JSON: the file is empty")
    if text[0] == "\ufeff":
        raise ValidationError("not JSON: starts with a byte-order mark (U+FEFF)")
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
    return data


def _check_schema(data: Any) -> dict[str, Any]:
    """The intent schema: an object, known fields, required fields, types and ranges, DNS-1123 names."""
    if not isinstance(data, dict):
        raise ValidationError(f"not an intent: the top level is a JSON {_json_type(data)}, not an object")
    unknown = data.keys() - _PROPERTIES
    if unknown:
        raise ValidationError("unknown field(s): " + ", ".join(sorted(unknown)))
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ValidationError("missing required field(s): " + ", ".join(missing))
    try:
        _VALIDATE(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ValidationError(_schema_reason(exc)) from None
    problems = [
        f"{key}: {value!r} is not a DNS-1123 name (a-z, 0-9 and '-', "
        "alphanumeric at both ends, at most 63 characters)"
        for key, value in (("target", data["target"]), ("namespace", data["namespace"]))
        if _DNS1123_LABEL.fullmatch(value) is None
    ]
    if problems:
        raise ValidationError("; ".join(problems))
    return data


def parse_intent(content: bytes) -> Intent:
    """Validate intent file content and return the :class:`Intent`; raise :class:`ValidationError`."""
    data = _check_schema(_decode(content))
    # JSON Schema draft-07 counts 3.0 as an integer; normalise it.
    return Intent(
        intent_type=data["intent_type"],
        target=data["target"],
        namespace=data["namespace"],
        replicas=int(data["replicas"]),
        priority=int(data.get("priority", 5)),
        correlation_id=data.get("correlation_id"),
        data=data,
    )


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


def read_intent(path: str, max_size: int) -> tuple[str, int, bytes, Intent]:
    """Read ``path`` once, hash it and validate it: ``(sha256 hex, size, content, intent)``.

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
        intent = parse_intent(content)
    except ValidationError as exc:
        exc.sha256 = digest
        exc.size = len(content)
        raise
    return digest, len(content), content, intent


def validate_path(path: str, max_size: int) -> list[str]:
    """Problems with the intent file at ``path`` (empty when valid), for ``conductor-loop validate``."""
    try:
        read_intent(path, max_size)
    except ValidationError as exc:
        return [exc.reason]
    return []
