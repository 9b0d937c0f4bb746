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
    """A JSONPath such as ``$.spec.ports[0]`` or ``$["odd key"]``; keys are JSON-escaped, never raw."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            out.append(f".{part}")
        else:
            out.append(f"[{json.dumps(part)}]")
    return "".join(out)


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
