"""Option values: durations, sizes, booleans, integers, strings, pattern lists and choices.

Every layer of the configuration (flags, ``CONDUCTOR_*`` environment, TOML file) goes through these
parsers; each raises ``ValueError`` with a one-line reason (the caller names the key and its source).
Durations: ``250ms``, ``1.5s``, ``2m``, ``1h``, ``7d``, Go's ``1m30s``, or a plain number of seconds.
Sizes: a byte count, ``KiB``/``MiB``/``GiB`` (also ``k``, ``M``, ``G``), or decimal ``kB``/``MB``/``GB``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

MiB = 1024 * 1024


# --------------------------------------------------------------------------- durations

_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go spells microseconds with the micro sign
    "μs": 1e-6,  # Greek mu, as some keyboards produce
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h|d)")
_PLAIN_NUMBER = re.compile(rf"^{_NUMBER}$")


def parse_duration(s: str) -> float:
    """Parse a duration to seconds.

    Accepted: ``250ms``, ``1.5s``, ``2m``, ``1h``, ``7d``, compound Go durations such as ``1m30s`` or
    ``1h2m3.5s``, ``ns``/``us``/``µs`` units, ``0``, and a plain number meaning seconds (``30``, ``0.5``).
    Units are case-insensitive.  Negative and non-finite durations are rejected.

    Raises ``ValueError("invalid duration '5x': use e.g. 250ms, 1.5s, 2m, 7d")`` on anything else.
    """
    text = s.strip() if isinstance(s, str) else s
    if not isinstance(text, str) or not text:
        raise ValueError(f"invalid duration {s!r}: use e.g. 250ms, 1.5s, 2m, 7d")
    if text.startswith("-"):
        raise ValueError(f"invalid duration '{s}': must not be negative")
    body = text[1:] if text.startswith("+") else text
    if _PLAIN_NUMBER.match(body):
        return float(body)
    lowered = body.lower()
    pos = 0
    total = 0.0
    for m in _DURATION_PART.finditer(lowered):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(lowered):
        raise ValueError(f"invalid duration '{s}': use e.g. 250ms, 1.5s, 2m, 7d")
    if not math.isfinite(total):
        raise ValueError(f"invalid duration '{s}': too large")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly in the syntax :func:`parse_duration` reads (``500ms``, ``30s``, ``7d``)."""
    if seconds == 0:
        return "0s"
    for unit, factor in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        value = seconds / factor
        if value >= 1 and abs(value - round(value)) < 1e-9:
            return f"{round(value)}{unit}"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


# --------------------------------------------------------------------------- sizes

# Decision: binary units (KiB, MiB, Ki, Mi) and single letters (k, K, M, G, T — as in GNU coreutils)
# are powers of 1024; two-letter decimal units (kB, KB, MB, GB, TB) are powers of 1000, as in SI.
_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1024,
    "ki": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "ti": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_SIZE = re.compile(rf"^({_NUMBER})\s*([A-Za-z]*)$")


def parse_size(s: str) -> int:
    """Parse a size to bytes.

    A plain number is bytes (``1024``).  Units, case-insensitive: ``B``; binary
    ``KiB``/``MiB``/``GiB``/``TiB`` (also ``Ki``, ``Mi``… and the single letters ``k``, ``M``, ``G``,
    ``T``, as GNU tools read them) are powers of 1024; decimal ``kB``/``KB``, ``MB``, ``GB``, ``TB``
    are powers of 1000.  Fractions are allowed (``1.5MiB``) and rounded down to whole bytes.

    Raises ``ValueError("invalid size '10XB': use e.g. 512KiB, 10MiB, 1GiB, 10MB or a byte count")``.
    """
    text = s.strip() if isinstance(s, str) else s
    m = _SIZE.match(text) if isinstance(text, str) else None
    if m is None or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"invalid size '{s}': use e.g. 512KiB, 10MiB, 1GiB, 10MB or a byte count")
    number, unit = m.group(1), m.group(2).lower()
    if "." in number:
        return int(float(number) * _SIZE_UNITS[unit])
    return int(number) * _SIZE_UNITS[unit]


def format_size(n: int) -> str:
    """Render bytes with the largest binary unit that divides them exactly (``10MiB``), else bytes."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


# --------------------------------------------------------------------------- value parsers

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def parse_bool(value: Any) -> bool:
    """A bool from a bool or a string (``true/false``, ``1/0``, ``yes/no``, ``on/off``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise ValueError(f"invalid boolean {value!r}: use true or false")


def to_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. 250ms, 1.5s, 2m, 7d")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid duration {value!r}: must be a non-negative number of seconds")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"invalid duration {value!r}: use e.g. 250ms, 1.5s, 2m, 7d")


def to_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: use e.g. 512KiB, 10MiB, 1GiB, 10MB or a byte count")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_size(value)
    raise ValueError(f"invalid size {value!r}: use e.g. 512KiB, 10MiB, 1GiB, 10MB or a byte count")


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"invalid integer {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"invalid integer {value!r}") from None
    raise ValueError(f"invalid integer {value!r}")


def to_optional_int(value: Any) -> int | None:
    if value is None:
        return None
    return to_int(value)


def to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    raise ValueError(f"invalid string {value!r}")


def to_optional_str(value: Any) -> str | None:
    if value is None:
        return None
    s = to_str(value).strip()
    return s or None


def to_patterns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [p.strip() for p in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = []
        for p in value:
            if not isinstance(p, str):
                raise ValueError(f"invalid pattern {p!r}: must be a string")
            items.append(p.strip())
    else:
        raise ValueError(f"invalid pattern list {value!r}: use a list or a comma-separated string")
    items = [p for p in items if p]
    if not items:
        raise ValueError("empty pattern list: give at least one glob such as intent-*.json")
    for p in items:
        if "/" in p or "\0" in p:
            raise ValueError(f"invalid pattern {p!r}: patterns match names in the handoff directory, no '/'")
    return tuple(dict.fromkeys(items))


def choice(*allowed: str, aliases: Mapping[str, str] | None = None) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"invalid value {value!r}: use one of {', '.join(allowed)}")
        v = value.strip().lower()
        if aliases and v in aliases:
            v = aliases[v]
        if v not in allowed:
            raise ValueError(f"invalid value {value!r}: use one of {', '.join(allowed)}")
        return v

    return parse


# --------------------------------------------------------------------------- the config
