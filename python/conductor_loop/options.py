"""The options of ``conductor-loop run`` (README, "Options of run"), one :class:`Field` each.

A field says how its value is parsed (the same parser for a flag, a ``CONDUCTOR_*`` variable and a TOML
key), how it is shown by ``config show``, its help line, and every spelling of its name: snake case, with
dashes, and its aliases. :mod:`conductor_loop.config` layers the values and checks them together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conductor_loop.intent_schema import IntentSchema, load_schema
from conductor_loop.units import (
    choice,
    format_duration,
    format_size,
    parse_bool,
    to_duration,
    to_int,
    to_optional_int,
    to_optional_str,
    to_patterns,
    to_size,
    to_str,
)

__all__ = ["ENV_NAMES", "ENV_PREFIX", "FIELDS", "Field", "field_named", "unknown_env"]

ENV_PREFIX = "CONDUCTOR_"


@dataclass(frozen=True, slots=True)
class Field:
    """How one option is read from flags, env and TOML, and how it is shown."""

    name: str
    parse: Callable[[Any], Any]
    render: Callable[[Any], str]
    help: str
    aliases: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        """The primary environment variable name (``CONDUCTOR_`` + upper snake case)."""
        return ENV_PREFIX + self.name.upper()

    @property
    def env_names(self) -> tuple[str, ...]:
        """Every environment variable name that sets this option."""
        return (self.env, *(ENV_PREFIX + a.upper() for a in self.aliases))


def _to_intent_schema(value: Any) -> IntentSchema:
    """``builtin``, ``go-compat`` or a JSON Schema file, loaded and checked now (``ValueError`` if unusable)."""
    return load_schema(to_str(value))


def _render_plain(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _render_patterns(value: Any) -> str:
    return ",".join(value)


def _render_duration(value: Any) -> str:
    return format_duration(float(value))


def _render_size(value: Any) -> str:
    return format_size(int(value))


_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("handoff", to_str, _render_plain, "handoff directory watched for intents"),
        Field("out", to_str, _render_plain, "output directory for generated packages"),
        Field("porch", to_str, _render_plain, "porch executable, or 'builtin'"),
        Field("mode", choice("direct", "structured"), _render_plain, "direct or structured"),
        Field("once", parse_bool, _render_plain, "drain the backlog and exit"),
        Field("debounce", to_duration, _render_duration, "quiet period before an intent is taken"),
        Field("workers", to_optional_int, _render_plain, "fixed pool size (min = max = N)"),
        Field("min_workers", to_int, _render_plain, "smallest pool size"),
        Field("max_workers", to_int, _render_plain, "largest pool size"),
        Field("timeout", to_duration, _render_duration, "porch timeout per intent"),
        Field("retries", to_int, _render_plain, "retries of environment failures"),
        Field("patterns", to_patterns, _render_patterns, "intent file globs", aliases=("pattern",)),
        Field("max_file_size", to_size, _render_size, "largest intent file accepted"),
        Field("intent_schema", _to_intent_schema, lambda v: v.spec, "builtin, go-compat or a JSON Schema file"),
        Field("cleanup_after", to_duration, _render_duration, "age of filed intents to remove (0: never)"),
        Field("metrics_addr", to_optional_str, _render_plain, "HOST:PORT of the metrics endpoint"),
        Field("log_format", choice("text", "json"), _render_plain, "text or json"),
        Field(
            "log_level",
            choice(*_LOG_LEVELS, aliases={"warn": "warning", "fatal": "critical"}),
            _render_plain,
            "debug, info, warning, error or critical",
        ),
        Field("dry_run", parse_bool, _render_plain, "list what would run, change nothing"),
        Field("watch", choice("auto", "inotify", "poll"), _render_plain, "auto, inotify or poll"),
        Field("poll_interval", to_duration, _render_duration, "how often poll mode lists the handoff"),
        Field("executor", choice("local", "fleet"), _render_plain, "local (worker processes) or fleet (NATS)"),
        Field("broker", to_optional_str, _render_plain, "fleet: NATS URL (nats://HOST:4222 or tls://…)"),
        Field("broker_creds", to_optional_str, _render_plain, "fleet: NATS credentials file"),
        Field("fleet", to_str, _render_plain, "fleet: its name (streams CL_<NAME>_*)"),
        Field("fleet_inflight", to_int, _render_plain, "fleet: most tasks out at once"),
        Field("fleet_inflight_bytes", to_size, _render_size, "fleet: most bytes of tasks out at once"),
        Field("fleet_lease", to_duration, _render_duration, "fleet: a worker's lease on a task"),
        Field("fleet_max_deliver", to_int, _render_plain, "fleet: deliveries of a task before it fails"),
        Field("config", to_optional_str, _render_plain, "TOML config file"),
    )
}

# Every spelling of a key (snake, dashes, aliases) → field name.
_KEYS: dict[str, str] = {}
for _f in FIELDS.values():
    for _k in (_f.name, *_f.aliases):
        _KEYS[_k] = _f.name
        _KEYS[_k.replace("_", "-")] = _f.name

#: Every environment variable that sets an option → the option's name.
ENV_NAMES: dict[str, str] = {e: f.name for f in FIELDS.values() for e in f.env_names}


def unknown_env(env: Mapping[str, str]) -> list[str]:
    """``CONDUCTOR_*`` variables in ``env`` that are not configuration options (they are ignored)."""
    return sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in ENV_NAMES)


def field_named(spelling: str) -> str | None:
    """The field a key spells (``max_workers``, ``max-workers``, an alias such as ``pattern``), or None."""
    return _KEYS.get(spelling)
