"""Small checks shared by both styles of the go-compat schema; each raises :class:`Rejected`
as ``go-compat: <JSONPath>: <what>``."""

from __future__ import annotations

from typing import Any

from conductor_loop.intent_schema.base import Rejected, json_path, json_type, shown

NAME = "go-compat"
MIN_REPLICAS, MAX_REPLICAS = 1, 100

Path = list[str | int]


def fail(path: Path, what: str) -> Rejected:
    """The rejection of the value at ``path``."""
    return Rejected(f"{NAME}: {json_path(path)}: {what}")


def non_empty_string(data: dict[str, Any], key: str, path: Path) -> None:
    """``data[key]`` must be present and a non-empty string."""
    if key not in data:
        raise fail([*path, key], "is required (a non-empty string)")
    value = data[key]
    if not isinstance(value, str) or not value:
        got = "an empty string" if value == "" else json_type(value)
        raise fail([*path, key], f"must be a non-empty string, got {got}")


def replicas(data: dict[str, Any], path: Path, *, required: bool) -> None:
    """``data["replicas"]``, when present (or when ``required``), must be a number from 1 to 100."""
    if "replicas" not in data:
        if required:
            raise fail([*path, "replicas"], f"is required (a number from {MIN_REPLICAS} to {MAX_REPLICAS})")
        return
    value = data["replicas"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail([*path, "replicas"], f"must be a number, got {json_type(value)}")
    if not MIN_REPLICAS <= value <= MAX_REPLICAS:
        raise fail([*path, "replicas"], f"must be from {MIN_REPLICAS} to {MAX_REPLICAS}, got {shown(value)}")


def choice(data: dict[str, Any], key: str, allowed: tuple[str, ...], path: Path) -> None:
    """``data[key]`` must be present and one of ``allowed``."""
    value = data.get(key)
    if isinstance(value, str) and value in allowed:
        return
    if key not in data:
        got = "missing"
    else:
        got = f"got {shown(value)}" if isinstance(value, str) else f"got {json_type(value)}"
    raise fail([*path, key], f"must be one of {', '.join(allowed)} ({got})")


def optional(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    """``data[key]``, when present, must be of ``kind``: ``dict`` (a JSON object) or ``list`` (an array).

    Returns the value, or ``None`` when absent.
    """
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, kind):
        want = "an object" if kind is dict else "an array"
        raise fail([*path, key], f"must be {want}, got {json_type(value)}")
    return value


def required(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    """Like :func:`optional`, but ``data[key]`` must be present."""
    if key not in data:
        want = "an object" if kind is dict else "an array"
        raise fail([*path, key], f"is required ({want})")
    return optional(data, key, kind, path)
