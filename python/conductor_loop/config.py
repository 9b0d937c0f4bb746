"""Configuration of ``conductor-loop run``: the :class:`RunConfig` and its layering (README, "Options of run").

Every ``run`` option can be given, from highest to lowest precedence, as

1. a command-line flag (the ``cli`` mapping given to :func:`resolve`),
2. an environment variable ``CONDUCTOR_<NAME>`` (``NAME`` is the option in upper snake case, e.g.
   ``CONDUCTOR_MAX_WORKERS``, ``CONDUCTOR_LOG_FORMAT``; ``CONDUCTOR_PATTERN`` and ``CONDUCTOR_PATTERNS`` both
   work and take a comma-separated list),
3. a TOML file: ``--config FILE``, else ``$CONDUCTOR_CONFIG``, else ``/etc/conductor-loop/config.toml`` if it
   exists; flat top-level keys in snake case or with dashes (``max_workers`` or ``max-workers``),
4. the defaults of :class:`RunConfig`.

Values from every layer go through the same parsers (:data:`conductor_loop.options.FIELDS`): durations
accept ``250ms``, ``1.5s``, ``2m``, ``1h``, ``7d``, Go's compound ``1m30s`` or a plain number of seconds (a
TOML number is seconds too); sizes accept a byte count or a number with a unit (see :func:`parse_size`).

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

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from conductor_loop.fleet.options import check_fleet_options
from conductor_loop.intent_schema import BUILTIN, IntentSchema
from conductor_loop.options import ENV_NAMES, ENV_PREFIX, FIELDS, Field, field_named, unknown_env
from conductor_loop.units import MiB, format_duration, format_size, parse_bool, parse_duration, parse_size

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


class ConfigError(ValueError):
    """A configuration problem; the message names the key and where it came from (exit code 2)."""


def _cpu_count() -> int:
    return os.cpu_count() or 1


@dataclass(slots=True)
class RunConfig:
    """Every option of ``conductor-loop run`` (README, "Options of run"), with its default."""

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
    executor: str = "local"
    broker: str | None = None
    broker_creds: str | None = None
    fleet: str = "default"
    fleet_inflight: int = 64
    fleet_inflight_bytes: int = 64 * MiB
    fleet_lease: float = 30.0
    fleet_max_deliver: int = 3
    config: str | None = None


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
        name = field_named(key.lstrip("-"))
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
    for var in sorted(ENV_NAMES):
        if var not in env:
            continue
        name = ENV_NAMES[var]
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
        name = field_named(key)
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
    check_fleet_options(cfg, fail)


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
    flag_cli = {k: v for k, v in cli.items() if field_named(k.lstrip("-")) != "config"}
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
