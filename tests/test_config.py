"""Tests of durations, sizes and the flags > env > file > defaults layering (README, "Options of run")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conductor_loop.config import (
    FIELDS,
    ConfigError,
    RunConfig,
    explain,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
    resolve,
    unknown_env,
)

NO_DEFAULT = "/nonexistent/conductor-loop/config.toml"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("30", 30.0),
        ("0.5", 0.5),
        (".5s", 0.5),
        ("1m30s", 90.0),
        ("1h2m3.5s", 3723.5),
        ("1d12h", 129600.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("100ns", 1e-7),
        (" 10s ", 10.0),
        ("10S", 10.0),
        ("+5s", 5.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["5x", "", "s", "ms", "1.2.3s", "1m 30s", "abc", "10 s", "1e3s", "inf", "nan", "1s2"]
)
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert str(err.value) == f"invalid duration '{text}': use e.g. 250ms, 1.5s, 2m, 7d"


def test_parse_duration_negative() -> None:
    with pytest.raises(ValueError, match="invalid duration '-1s': must not be negative"):
        parse_duration("-1s")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("0", 0),
        ("10MiB", 10 * 1024 * 1024),
        ("512KiB", 512 * 1024),
        ("1GiB", 1024**3),
        ("2TiB", 2 * 1024**4),
        ("10MB", 10_000_000),
        ("1kB", 1000),
        ("1KB", 1000),
        ("1GB", 10**9),
        ("1k", 1024),
        ("1K", 1024),
        ("4M", 4 * 1024**2),
        ("1Gi", 1024**3),
        ("100B", 100),
        ("1.5MiB", 1572864),
        ("10 MiB", 10 * 1024 * 1024),
        ("10mib", 10 * 1024 * 1024),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10XB", "", "MiB", "-1", "1.2.3MiB", "ten", "1 2", "1e6"])
def test_parse_size_errors(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_size(text)
    assert str(err.value) == f"invalid size '{text}': use e.g. 512KiB, 10MiB, 1GiB, 10MB or a byte count"


@pytest.mark.parametrize("seconds", [0.0, 0.25, 0.5, 1.5, 30.0, 90.0, 120.0, 3600.0, 604800.0, 0.0005])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_format_size() -> None:
    assert format_size(10 * 1024 * 1024) == "10MiB"
    assert format_size(1000) == "1000"
    assert parse_size(format_size(3 * 1024**3)) == 3 * 1024**3


def test_defaults() -> None:
    cfg, sources = resolve({}, {}, None, default_config_path=NO_DEFAULT)
    assert cfg == RunConfig()
    assert cfg.handoff == "./handoff" and cfg.out == "./out" and cfg.porch == "builtin"
    assert cfg.mode == "direct" and cfg.once is False and cfg.debounce == 0.5
    assert cfg.workers is None and cfg.min_workers == 1 and cfg.max_workers == (os.cpu_count() or 1)
    assert cfg.timeout == 30.0 and cfg.retries == 2 and cfg.patterns == ("intent-*.json",)
    assert cfg.max_file_size == 10 * 1024 * 1024 and cfg.cleanup_after == 7 * 86400
    assert cfg.metrics_addr is None and cfg.log_format == "text" and cfg.log_level == "info"
    assert cfg.dry_run is False and cfg.config is None
    assert set(sources) == set(FIELDS)
    assert set(sources.values()) == {"default"}


def write_toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    cfg_file = write_toml(
        tmp_path,
        'timeout = "10s"\ndebounce = 2\nretries = 5\nmax-file-size = "1MiB"\n'
        'pattern = ["a-*.json", "b-*.json"]\nlog_format = "json"\n',
    )
    env = {"CONDUCTOR_TIMEOUT": "20s", "CONDUCTOR_DEBOUNCE": "250ms", "CONDUCTOR_INTENT_SHA256": "x"}
    cli = {"timeout": "40s"}
    cfg, src = resolve(cli, env, str(cfg_file), default_config_path=NO_DEFAULT)
    assert (cfg.timeout, src["timeout"]) == (40.0, "flag")
    assert (cfg.debounce, src["debounce"]) == (0.25, "env CONDUCTOR_DEBOUNCE")
    assert (cfg.retries, src["retries"]) == (5, f"file {cfg_file}")
    assert (cfg.max_file_size, src["max_file_size"]) == (1024 * 1024, f"file {cfg_file}")
    assert (cfg.patterns, src["patterns"]) == (("a-*.json", "b-*.json"), f"file {cfg_file}")
    assert (cfg.log_format, src["log_format"]) == ("json", f"file {cfg_file}")
    assert (cfg.mode, src["mode"]) == ("direct", "default")
    assert (cfg.config, src["config"]) == (str(cfg_file), "flag")

    rows = {key: (value, source) for key, value, source in explain(cfg, src)}
    assert rows["timeout"] == ("40s", "flag")
    assert rows["debounce"] == ("250ms", "env CONDUCTOR_DEBOUNCE")
    assert rows["max_file_size"] == ("1MiB", f"file {cfg_file}")
    assert rows["patterns"] == ("a-*.json,b-*.json", f"file {cfg_file}")
    assert rows["metrics_addr"] == ("(none)", "default")
    assert rows["once"] == ("false", "default")
    assert list(rows) == list(FIELDS)


def test_config_path_from_env_and_default(tmp_path: Path) -> None:
    cfg_file = write_toml(tmp_path, "retries = 7\n")
    cfg, src = resolve({}, {"CONDUCTOR_CONFIG": str(cfg_file)}, None, default_config_path=NO_DEFAULT)
    assert cfg.retries == 7 and src["retries"] == f"file {cfg_file}"
    assert src["config"] == "env CONDUCTOR_CONFIG"
    cfg, src = resolve({}, {}, None, default_config_path=str(cfg_file))
    assert cfg.retries == 7 and cfg.config == str(cfg_file) and src["config"] == "default"
    # --config given in the cli mapping works like the parameter.
    cfg, src = resolve({"config": str(cfg_file)}, {}, None, default_config_path=NO_DEFAULT)
    assert cfg.retries == 7 and src["config"] == "flag"


def test_explicit_missing_config_is_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"config file {missing}: not found"):
        resolve({}, {}, str(missing), default_config_path=NO_DEFAULT)


def test_unknown_file_key_names_key_and_file(tmp_path: Path) -> None:
    cfg_file = write_toml(tmp_path, 'timeot = "5s"\n')
    with pytest.raises(ConfigError) as err:
        resolve({}, {}, str(cfg_file), default_config_path=NO_DEFAULT)
    assert str(err.value) == f"config file {cfg_file}: key 'timeot' is unknown"


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('timeout = "soon"', "key 'timeout'='soon': invalid duration 'soon'"),
        ("retries = 1.5", "key 'retries'=1.5: invalid integer"),
        ("retries = true", "key 'retries'=True: invalid integer"),
        ('mode = "fancy"', "key 'mode'='fancy': invalid value 'fancy': use one of direct, structured"),
        ("[run]\ntimeout = 1", "key 'run' is unknown"),
        ("[timeout]\nx = 1", "key 'timeout' must be a value, not a table"),
        ("timeout = ", "invalid TOML"),
        ("max_workers = 2\nmax-workers = 3", "given twice"),
    ],
)
def test_bad_file_values(tmp_path: Path, toml: str, needle: str) -> None:
    cfg_file = write_toml(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as err:
        resolve({}, {}, str(cfg_file), default_config_path=NO_DEFAULT)
    assert str(err.value).startswith(f"config file {cfg_file}: ")
    assert needle in str(err.value)


def test_bad_env_value_names_variable() -> None:
    with pytest.raises(ConfigError) as err:
        resolve({}, {"CONDUCTOR_DEBOUNCE": "fast"}, None, default_config_path=NO_DEFAULT)
    assert str(err.value) == (
        "env CONDUCTOR_DEBOUNCE='fast': invalid duration 'fast': use e.g. 250ms, 1.5s, 2m, 7d"
    )
    with pytest.raises(ConfigError, match="env CONDUCTOR_ONCE='maybe'"):
        resolve({}, {"CONDUCTOR_ONCE": "maybe"}, None, default_config_path=NO_DEFAULT)


def test_bad_flag_value_names_flag() -> None:
    with pytest.raises(ConfigError, match="flag --max-file-size='10XB': invalid size '10XB'"):
        resolve({"max_file_size": "10XB"}, {}, None, default_config_path=NO_DEFAULT)


def test_env_values_and_unknown_env_ignored() -> None:
    env = {
        "CONDUCTOR_PATTERN": "x-*.json, y-*.json",
        "CONDUCTOR_ONCE": "true",
        "CONDUCTOR_MAX_FILE_SIZE": "512KiB",
        "CONDUCTOR_LOG_LEVEL": "WARN",
        "CONDUCTOR_METRICS_ADDR": "127.0.0.1:9090",
        "CONDUCTOR_INTENT_SHA256": "abc",
        "CONDUCTOR_ATTEMPT": "1",
        "CONDUCTOR_CORRELATION_ID": "c",
        "CONDUCTOR_FAKEPORCH_MODE": "sleep",
        "CONDUCTOR_TIMEOT": "1s",
    }
    cfg, src = resolve({}, env, None, default_config_path=NO_DEFAULT)
    assert cfg.patterns == ("x-*.json", "y-*.json") and src["patterns"] == "env CONDUCTOR_PATTERN"
    assert cfg.once is True and cfg.max_file_size == 512 * 1024
    assert cfg.log_level == "warning" and cfg.metrics_addr == "127.0.0.1:9090"
    assert unknown_env(env) == [
        "CONDUCTOR_ATTEMPT",
        "CONDUCTOR_CORRELATION_ID",
        "CONDUCTOR_FAKEPORCH_MODE",
        "CONDUCTOR_INTENT_SHA256",
        "CONDUCTOR_TIMEOT",
    ]


def test_cli_accepts_parsed_values_and_dashed_names() -> None:
    cfg, src = resolve(
        {
            "pattern": ("a-*.json",),
            "max-workers": 3,
            "min_workers": "2",
            "once": True,
            "debounce": 0.1,
            "out": None,
        },
        {},
        None,
        default_config_path=NO_DEFAULT,
    )
    assert cfg.patterns == ("a-*.json",) and cfg.max_workers == 3 and cfg.min_workers == 2
    assert cfg.once is True and cfg.debounce == 0.1
    assert src["out"] == "default"
    with pytest.raises(ConfigError, match="unknown option"):
        resolve({"bogus": 1}, {}, None, default_config_path=NO_DEFAULT)


def test_workers_layering(tmp_path: Path) -> None:
    cfg, src = resolve({"workers": "4"}, {}, None, default_config_path=NO_DEFAULT)
    assert (cfg.workers, cfg.min_workers, cfg.max_workers) == (4, 4, 4)
    assert src["min_workers"] == src["max_workers"] == "flag"

    # workers from env, max from a flag: the flag wins for max, env's workers still sets min.
    cfg, src = resolve({"max_workers": 8}, {"CONDUCTOR_WORKERS": "3"}, None, default_config_path=NO_DEFAULT)
    assert (cfg.workers, cfg.min_workers, cfg.max_workers) == (None, 3, 8)
    assert src["min_workers"] == "env CONDUCTOR_WORKERS" and src["max_workers"] == "flag"

    with pytest.raises(ConfigError, match="mutually exclusive"):
        resolve({"workers": 2, "max_workers": 3}, {}, None, default_config_path=NO_DEFAULT)

    # Raising only the minimum above the CPU-count default lifts the maximum with it.
    big = (os.cpu_count() or 1) + 3
    cfg, src = resolve({"min_workers": big}, {}, None, default_config_path=NO_DEFAULT)
    assert cfg.max_workers == big and src["max_workers"].startswith("raised")


@pytest.mark.parametrize(
    ("cli", "needle"),
    [
        ({"workers": 0}, "flag: workers must be at least 1"),
        ({"min_workers": 4, "max_workers": 2}, "min_workers 4 (flag) is greater than max_workers 2 (flag)"),
        ({"retries": -1}, "flag: retries must be 0 or more"),
        ({"timeout": "0s"}, "flag: timeout must be greater than 0"),
        ({"debounce": "-1s"}, "must not be negative"),
        ({"log_format": "xml"}, "use one of text, json"),
        ({"mode": "STRUCTURED"}, None),
    ],
)
def test_range_validation(cli: dict[str, object], needle: str | None) -> None:
    if needle is None:
        cfg, _ = resolve(cli, {}, None, default_config_path=NO_DEFAULT)
        assert cfg.mode == "structured"
        return
    with pytest.raises(ConfigError) as err:
        resolve(cli, {}, None, default_config_path=NO_DEFAULT)
    assert needle in str(err.value)


def test_range_error_names_env_source() -> None:
    with pytest.raises(ConfigError, match="env CONDUCTOR_RETRIES: retries must be 0 or more"):
        resolve({}, {"CONDUCTOR_RETRIES": "-2"}, None, default_config_path=NO_DEFAULT)


def test_cleanup_after_zero_disables(tmp_path: Path) -> None:
    cfg_file = write_toml(tmp_path, "cleanup-after = 0\n")
    cfg, src = resolve({}, {}, str(cfg_file), default_config_path=NO_DEFAULT)
    assert cfg.cleanup_after == 0.0 and src["cleanup_after"] == f"file {cfg_file}"
