"""The options of ``conductor-loop worker`` and their layering, as for ``run`` (README, "conductor-loop worker").

Highest first: a command-line flag; ``CONDUCTOR_<NAME>`` (``CONDUCTOR_BROKER``, ``CONDUCTOR_SLOTS``…); a TOML
file (``--config FILE``, else ``$CONDUCTOR_WORKER_CONFIG``, else ``/etc/conductor-loop/worker.toml`` if it exists;
flat keys, unknown keys are an error); the defaults. Values go through the same parsers as ``run``'s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conductor_loop.config import ConfigError
from conductor_loop.executor import resolve_porch
from conductor_loop.fleet.protocol import DEFAULT_FLEET, check_fleet_name
from conductor_loop.metricserver import parse_addr
from conductor_loop.units import choice, to_duration, to_int, to_optional_str, to_str

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

DEFAULT_FILE = "/etc/conductor-loop/worker.toml"
CONFIG_ENV = "CONDUCTOR_WORKER_CONFIG"


@dataclass(frozen=True)
class WorkerOptions:
    """Every option of ``conductor-loop worker``, resolved."""

    broker: str = ""
    broker_creds: str | None = None
    fleet: str = DEFAULT_FLEET
    porch: str = "builtin"
    slots: int = 1
    timeout: float = 30.0
    metrics_addr: str | None = None
    worker_id: str = ""
    tmp_dir: str | None = None
    log_format: str = "text"
    log_level: str = "info"
    sources: dict[str, str] = field(default_factory=dict, compare=False)


PARSERS: dict[str, Callable[[Any], Any]] = {
    "broker": to_str,
    "broker_creds": to_optional_str,
    "fleet": to_str,
    "porch": to_str,
    "slots": to_int,
    "timeout": to_duration,
    "metrics_addr": to_optional_str,
    "worker_id": to_str,
    "tmp_dir": to_optional_str,
    "log_format": choice("text", "json"),
    "log_level": to_str,
}


def _parse(name: str, raw: Any, where: str) -> Any:
    try:
        return PARSERS[name](raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _file_values(path: str) -> dict[str, Any]:
    where = f"config file {path}"
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    out = {}
    for key, raw in doc.items():
        name = key.replace("-", "_")
        if name not in PARSERS:
            raise ConfigError(f"{where}: key {key!r} is unknown")
        out[name] = _parse(name, raw, f"{where}: key {key!r}")
    return out


def resolve(flags: Mapping[str, Any], env: Mapping[str, str], config: str | None) -> WorkerOptions:
    """The worker's options from flags (``None``: not given), environment and file; ``ConfigError`` naming
    the key and its source for a bad value or a missing ``--broker``."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config or env.get(CONFIG_ENV) or (DEFAULT_FILE if os.path.exists(DEFAULT_FILE) else None)
    if path:
        for name, value in _file_values(path).items():
            values[name], sources[name] = value, f"file {path}"
    for name in PARSERS:
        var = f"CONDUCTOR_{name.upper()}"
        if var in env:
            values[name], sources[name] = _parse(name, env[var], f"env {var}={env[var]!r}"), f"env {var}"
    for name, raw in flags.items():
        if raw is not None:
            flag = "--" + name.replace("_", "-")
            values[name], sources[name] = _parse(name, raw, f"flag {flag}={raw!r}"), "flag"
    opts = WorkerOptions(**values, sources=sources)
    _check(opts)
    return opts


def _check(opts: WorkerOptions) -> None:
    def where(name: str) -> str:
        return opts.sources.get(name, "default")

    if not opts.broker:
        raise ConfigError("--broker is required (nats://HOST:4222 or tls://HOST:4222; env CONDUCTOR_BROKER)")
    if not opts.broker.startswith(("nats://", "tls://")):
        raise ConfigError(f"{where('broker')}: --broker {opts.broker!r}: use nats://HOST:PORT or tls://HOST:PORT")
    if opts.slots < 1:
        raise ConfigError(f"{where('slots')}: --slots must be at least 1, not {opts.slots}")
    try:
        check_fleet_name(opts.fleet)
        resolve_porch(opts.porch)
        if opts.metrics_addr:
            parse_addr(opts.metrics_addr)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if opts.broker_creds:
        from conductor_loop.fleet.broker import check_creds  # imports nats: only when there are creds

        try:
            check_creds(opts.broker_creds)
        except ValueError as exc:
            raise ConfigError(f"{where('broker_creds')}: {exc}") from None
