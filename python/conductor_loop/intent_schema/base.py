"""What every intent schema is: :class:`IntentSchema`, its rejection :class:`Rejected`, and JSON paths."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Protocol

from conductor_loop.intent import Intent

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class Rejected(ValueError):
    """The document breaks the schema; ``reason`` is one line saying where and what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SchemaLoadError(ValueError):
    """An ``--intent-schema`` value that cannot be used (unknown name, unreadable or invalid schema file)."""


class IntentSchema(Protocol):
    """The rules an intent document must follow, chosen once from ``--intent-schema``.

    Implementations are picklable (they travel to the worker processes in the worker settings) and
    compare equal when they apply the same rules.
    """

    @property
    def spec(self) -> str:
        """The ``--intent-schema`` value: ``builtin``, ``go-compat`` or the schema file's path."""
        ...

    def check(self, data: dict[str, Any]) -> Intent:
        """Return the :class:`Intent` of a parsed JSON object, or raise :class:`Rejected`."""
        ...


def json_path(parts: Iterable[str | int]) -> str:
    """A JSONPath such as ``$.spec.ports[0]`` or ``$["odd key"]``; keys are JSON-escaped, never raw, and
    a key longer than :data:`SHOWN_MAX` characters is cut."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            key = shown_key(part)
            out.append(f"[{key}]" if key.startswith('"') else f".{key}")
    return "".join(out)


def shown_key(key: str) -> str:
    """An object key for a rejection reason: as is when plain, else JSON-escaped (so a newline or a
    control character never reaches a log line raw), cut to :data:`SHOWN_MAX` characters."""
    if _PLAIN_KEY.fullmatch(key) and len(key) <= SHOWN_MAX:
        return key
    text = json.dumps(key)
    return f"{text[:SHOWN_MAX]}…" if len(text) > SHOWN_MAX else text


#: Longest rendering of a value quoted in a rejection reason: intents are hostile input, and a
#: 10,000-character value must not be echoed whole into logs, status files and error logs.
SHOWN_MAX = 80


def shown(value: object) -> str:
    """``repr(value)`` for a rejection reason, cut to :data:`SHOWN_MAX` characters with the length said."""
    text = repr(value)
    if len(text) <= SHOWN_MAX:
        return text
    return f"{text[:SHOWN_MAX]}… ({len(text)} characters)"


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value (``integer`` and ``number`` apart, ``boolean`` not a number)."""
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
