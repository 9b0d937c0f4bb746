"""Configuration of ``conductor-loop run``: durations, sizes, :class:`RunConfig` and its layering (SPEC §4).

Every ``run`` option can be given, from highest to lowest precedence, as

1. a command-line flag (the ``cli`` mapping given to :func:`resolve`),
2. an environment variable ``CONDUCTOR_<NAME>`` (``NAME`` is the option in upper snake case, e.g.
   ``CONDUCTOR_MAX_WORKERS``, ``CONDUCTOR_LOG_FORMAT``; ``CONDUCTOR_PATTERN`` and ``CONDUCTOR_PATTERNS`` both
   work and take a comma-separated list),
3. a TOML file: ``--config FILE``, else ``$CONDUCTOR_CONFIG``, else ``/etc/conductor-loop/config.toml`` if it
   exists; flat top-level keys in snake case or with dashes (``max_workers`` or ``max-workers``),
4. the defaults of :class:`RunConfig`.

Values from every layer go through the same parsers (:data:`FIELDS`): durations accept ``250ms``, ``1.5s``,
``2m``, ``1h``, ``7d``, Go's compound ``1m30s`` or a plain number of seconds (a TOML number is seconds too);
sizes accept a byte count or a number with a unit (see :func:`parse_size`).

Errors are :class:`ConfigError` naming the key and its source.  An unknown key in the config file is an
error.  Unknown ``CONDUCTOR_*`` environment variables are *not* an error: that prefix is shared with the
variables the loop hands to porch (``CONDUCTOR_INTENT_SHA256``, ``CONDUCTOR_ATTEMPT``,
``CONDUCTOR_CORRELATION_ID``) and with whatever operators pass through to their porch; only the known names
are read.  :func:`unknown_env` lists the others so the caller can log them at debug level.

``workers = N`` is shorthand for ``min_workers = max_workers = N`` at the layer where it is given; giving
``workers`` together with ``min_workers``/``max_workers`` in the same layer is an error.  When
``max_workers`` is left at its default (the CPU count) and ``min_workers`` is larger, the maximum is raised
to the minimum.
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from conductor_loop.intent_schema import BUILTIN, IntentSchema, load_schema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "FIELDS",
    "ConfigError",
    "Field",
    "RunConfig",
    "explain",
    "format_duration",
    "format_size",
    "parse_bool",
    "parse_duration",
    "parse_size",
    "resolve",
    "unknown_env",
]

DEFAULT_CONFIG_PATH = "/etc/conductor-loop/config.toml"
ENV_PREFIX = "CONDUCTOR_"
MiB = 1024 * 1024


class ConfigError(ValueError):
    """A configuration problem; the message names the key and where it came from (exit code 2)."""


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


def _to_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. 250ms, 1.5s, 2m, 7d")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid duration {value!r}: must be a non-negative number of seconds")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"invalid duration {value!r}: use e.g. 250ms, 1.5s, 2m, 7d")


def _to_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: use e.g. 512KiB, 10MiB, 1GiB, 10MB or a byte count")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_size(value)
    raise ValueError(f"invalid size {value!r}: use e.g. 512KiB, 10MiB, 1GiB, 10MB or a byte count")


def _to_int(value: Any) -> int:
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


def _to_optional_int(value: Any) -> int | None:
    if value is None:
        return None
    return _to_int(value)


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    raise ValueError(f"invalid string {value!r}")


def _to_optional_str(value: Any) -> str | None:
    if value is None:
        return None
    s = _to_str(value).strip()
    return s or None


def _to_patterns(value: Any) -> tuple[str, ...]:
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


def _to_intent_schema(value: Any) -> IntentSchema:
    """``builtin``, ``go-compat`` or a JSON Schema file, loaded and checked now (``ValueError`` if unusable)."""
    return load_schema(_to_str(value))


def _choice(*allowed: str, aliases: Mapping[str, str] | None = None) -> Callable[[Any], str]:
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


def _cpu_count() -> int:
    return os.cpu_count() or 1


@dataclass(slots=True)
class RunConfig:
    """Every option of ``conductor-loop run`` (SPEC §4), with its default."""

    handoff: str = "./handoff"
    out: str = "./out"
    porch: str = "builtin"
    mode: str = "direct"
    once: bool = False
    debounce: float = 0.5
    workers: int | None = None
    min_workers: int = 1
    max_workers: int = field(default_factory=_cpu_count)
    timeout: float = 30.0
    retries: int = 2
    patterns: tuple[str, ...] = ("intent-*.json",)
    max_file_size: int = 10 * MiB
    intent_schema: IntentSchema = BUILTIN
    cleanup_after: float = 7 * 86400.0
    metrics_addr: str | None = None
    log_format: str = "text"
    log_level: str = "info"
    dry_run: bool = False
    watch: str = "auto"
    poll_interval: float = 1.0
    config: str | None = None


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
        Field("handoff", _to_str, _render_plain, "handoff directory watched for intents"),
        Field("out", _to_str, _render_plain, "output directory for generated packages"),
        Field("porch", _to_str, _render_plain, "porch executable, or 'builtin'"),
        Field("mode", _choice("direct", "structured"), _render_plain, "direct or structured"),
        Field("once", parse_bool, _render_plain, "drain the backlog and exit"),
        Field("debounce", _to_duration, _render_duration, "quiet period before an intent is taken"),
        Field("workers", _to_optional_int, _render_plain, "fixed pool size (min = max = N)"),
        Field("min_workers", _to_int, _render_plain, "smallest pool size"),
        Field("max_workers", _to_int, _render_plain, "largest pool size"),
        Field("timeout", _to_duration, _render_duration, "porch timeout per intent"),
        Field("retries", _to_int, _render_plain, "retries of environment failures"),
        Field("patterns", _to_patterns, _render_patterns, "intent file globs", aliases=("pattern",)),
        Field("max_file_size", _to_size, _render_size, "largest intent file accepted"),
        Field("intent_schema", _to_intent_schema, lambda v: v.spec, "builtin, go-compat or a JSON Schema file"),
        Field("cleanup_after", _to_duration, _render_duration, "age of filed intents to remove (0: never)"),
        Field("metrics_addr", _to_optional_str, _render_plain, "HOST:PORT of the metrics endpoint"),
        Field("log_format", _choice("text", "json"), _render_plain, "text or json"),
        Field(
            "log_level",
            _choice(*_LOG_LEVELS, aliases={"warn": "warning", "fatal": "critical"}),
            _render_plain,
            "debug, info, warning, error or critical",
        ),
        Field("dry_run", parse_bool, _render_plain, "list what would run, change nothing"),
        Field("watch", _choice("auto", "inotify", "poll"), _render_plain, "auto, inotify or poll"),
        Field("poll_interval", _to_duration, _render_duration, "how often poll mode lists the handoff"),
        Field("config", _to_optional_str, _render_plain, "TOML config file"),
    )
}

# Every spelling of a key (snake, dashes, aliases) → field name.
_KEYS: dict[str, str] = {}
for _f in FIELDS.values():
    for _k in (_f.name, *_f.aliases):
        _KEYS[_k] = _f.name
        _KEYS[_k.replace("_", "-")] = _f.name

_ENV_NAMES: dict[str, str] = {e: f.name for f in FIELDS.values() for e in f.env_names}


def unknown_env(env: Mapping[str, str]) -> list[str]:
    """``CONDUCTOR_*`` variables in ``env`` that are not configuration options (they are ignored)."""
    return sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in _ENV_NAMES)


# --------------------------------------------------------------------------- layering

_RANK = {"default": 0, "file": 1, "env": 2, "flag": 3}


@dataclass(slots=True)
class _Layer:
    kind: str  # 'flag' | 'env' | 'file'
    values: dict[str, Any]
    sources: dict[str, str]


def _parse_value(name: str, raw: Any, where: str) -> Any:
    try:
        return FIELDS[name].parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _flag_layer(cli: Mapping[str, Any]) -> _Layer:
    layer = _Layer("flag", {}, {})
    for key, raw in cli.items():
        name = _KEYS.get(key.lstrip("-"))
        if name is None:
            raise ConfigError(f"flag --{key.lstrip('-').replace('_', '-')}: unknown option")
        if raw is None:
            continue
        flag = "--" + key.lstrip("-").replace("_", "-")
        layer.values[name] = _parse_value(name, raw, f"flag {flag}={raw!r}")
        layer.sources[name] = "flag"
    return layer


def _env_layer(env: Mapping[str, str]) -> _Layer:
    layer = _Layer("env", {}, {})
    for var in sorted(_ENV_NAMES):
        if var not in env:
            continue
        name = _ENV_NAMES[var]
        raw = env[var]
        if name in layer.values:
            raise ConfigError(f"env {var}: conflicts with env {layer.sources[name].split(' ', 1)[1]}")
        layer.values[name] = _parse_value(name, raw, f"env {var}={raw!r}")
        layer.sources[name] = f"env {var}"
    return layer


#: A configuration file larger than this is refused (it is a handful of keys).
CONFIG_MAX_BYTES = 1024 * 1024


def _read_regular(path: str, where: str) -> bytes:
    """The bytes of a regular file, opened without blocking: a FIFO or device put in the config file's
    place (e.g. before a SIGHUP) is refused, never waited on. Symlinks are followed (Kubernetes mounts
    ConfigMaps through them)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{where}: not a regular file")
        if st.st_size > CONFIG_MAX_BYTES:
            raise ConfigError(f"{where}: larger than {CONFIG_MAX_BYTES} bytes")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_layer(path: str) -> _Layer:
    where = f"config file {path}"
    try:
        doc = tomllib.loads(_read_regular(path, where).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: not UTF-8 ({exc})") from None
    layer = _Layer("file", {}, {})
    for key, raw in doc.items():
        name = _KEYS.get(key)
        if name is None or name == "config":
            raise ConfigError(f"{where}: key {key!r} is unknown")
        if name in layer.values:
            raise ConfigError(f"{where}: key {key!r} is given twice (as {layer.sources[name]})")
        if isinstance(raw, dict):
            raise ConfigError(f"{where}: key {key!r} must be a value, not a table")
        layer.values[name] = _parse_value(name, raw, f"{where}: key {key!r}={raw!r}")
        layer.sources[name] = key
    layer.sources = {k: f"file {path}" for k in layer.sources}
    return layer


def _expand_workers(layer: _Layer) -> None:
    """``workers = N`` in a layer means ``min_workers = max_workers = N`` in that layer."""
    n = layer.values.get("workers")
    if n is None:
        return
    clash = [k for k in ("min_workers", "max_workers") if k in layer.values]
    if clash:
        where = {"flag": "flags", "env": "environment"}.get(layer.kind, layer.sources["workers"])
        raise ConfigError(f"{where}: workers and {' / '.join(clash)} are mutually exclusive")
    src = layer.sources["workers"]
    for k in ("min_workers", "max_workers"):
        layer.values[k] = n
        layer.sources[k] = src


def _config_path(
    cli: Mapping[str, Any], env: Mapping[str, str], config_path: str | None, default_config_path: str
) -> tuple[str | None, str]:
    """The config file to read and where its name came from."""
    explicit = config_path if config_path is not None else cli.get("config")
    if explicit:
        return os.fspath(explicit), "flag"
    env_path = env.get(ENV_PREFIX + "CONFIG")
    if env_path:
        return env_path, f"env {ENV_PREFIX}CONFIG"
    if default_config_path and os.path.isfile(default_config_path):
        return default_config_path, "default"
    return None, "default"


def _validate(cfg: RunConfig, sources: Mapping[str, str]) -> None:
    def fail(name: str, problem: str) -> ConfigError:
        return ConfigError(f"{sources.get(name, 'default')}: {name} {problem}")

    if cfg.workers is not None and cfg.workers < 1:
        raise fail("workers", f"must be at least 1, not {cfg.workers}")
    if cfg.min_workers < 1:
        raise fail("min_workers", f"must be at least 1, not {cfg.min_workers}")
    if cfg.max_workers < 1:
        raise fail("max_workers", f"must be at least 1, not {cfg.max_workers}")
    if cfg.min_workers > cfg.max_workers:
        raise ConfigError(
            f"min_workers {cfg.min_workers} ({sources['min_workers']}) is greater than "
            f"max_workers {cfg.max_workers} ({sources['max_workers']})"
        )
    if cfg.retries < 0:
        raise fail("retries", f"must be 0 or more, not {cfg.retries}")
    if cfg.timeout <= 0:
        raise fail("timeout", "must be greater than 0")
    if cfg.max_file_size <= 0:
        raise fail("max_file_size", "must be greater than 0")
    if not 0.01 <= cfg.poll_interval <= 3600:
        raise fail("poll_interval", "must be between 10ms and 1h")
    for name in ("handoff", "out", "porch"):
        if not getattr(cfg, name).strip():
            raise fail(name, "must not be empty")


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    config_path: str | None,
    *,
    default_config_path: str = DEFAULT_CONFIG_PATH,
) -> tuple[RunConfig, dict[str, str]]:
    """Layer flags > ``CONDUCTOR_*`` env > TOML file > defaults into a validated :class:`RunConfig`.

    ``cli`` holds only the options given on the command line, keyed by option name (``max_workers``,
    ``max-workers`` or ``pattern`` all work), as raw strings or already-parsed values; ``None`` values are
    ignored.  Pass only options the user actually gave (e.g. filter on click's
    ``ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE``): a flag's default would otherwise
    override the environment and the file.  ``config_path`` is the ``--config`` value, if any.
    Returns the config and, per field, its source: ``"flag"``, ``"env CONDUCTOR_TIMEOUT"``,
    ``"file /path/config.toml"`` or ``"default"``.

    Raises :class:`ConfigError` naming the key and the source for unknown file keys, bad values and
    out-of-range settings.
    """
    path, path_source = _config_path(cli, env, config_path, default_config_path)
    flag_cli = {k: v for k, v in cli.items() if _KEYS.get(k.lstrip("-")) != "config"}
    layers = [_file_layer(path)] if path else []
    layers.append(_env_layer({k: v for k, v in env.items() if k != ENV_PREFIX + "CONFIG"}))
    layers.append(_flag_layer(flag_cli))
    for layer in layers:
        _expand_workers(layer)

    cfg = RunConfig()
    sources = dict.fromkeys(FIELDS, "default")
    for layer in layers:  # lowest precedence first, so later layers win
        for name, value in layer.values.items():
            setattr(cfg, name, value)
            sources[name] = layer.sources[name]
    cfg.config = path
    sources["config"] = path_source

    # workers is the effective fixed size only when it decided both bounds.
    if cfg.workers is not None and not (
        sources["min_workers"] == sources["workers"] == sources["max_workers"]
        and cfg.min_workers == cfg.max_workers == cfg.workers
    ):
        cfg.workers = None
        sources["workers"] = "default"
    if sources["max_workers"] == "default" and cfg.min_workers > cfg.max_workers:
        cfg.max_workers = cfg.min_workers
        sources["max_workers"] = f"raised to min_workers ({sources['min_workers']})"
    _validate(cfg, sources)
    return cfg, sources


def explain(cfg: RunConfig, sources: dict[str, str]) -> list[tuple[str, str, str]]:
    """Rows ``(key, rendered value, source)`` for every option, for ``conductor-loop config show``."""
    rows = []
    for f in fields(cfg):
        spec = FIELDS[f.name]
        value = getattr(cfg, f.name)
        rendered = "(none)" if value is None else spec.render(value)
        rows.append((f.name, rendered, sources.get(f.name, "default")))
    return rows
