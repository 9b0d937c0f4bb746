"""The Go loop's command line: every flag it took, translated or refused (README "Migrating from the Go loop")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conductor_loop.cli.goflags import GoFlagError, label_sources, translate
from conftest import run_cli, write_intent

pytestmark = pytest.mark.timeout(120)

VALUE_OPTIONS = {"--handoff", "--out", "--porch", "--retries", "--poll-interval", "--intent-schema"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-handoff", "h"], ["--handoff", "h", "--go-flag", "handoff=-handoff"]),
        (["-handoff=h"], ["--handoff", "h", "--go-flag", "handoff=-handoff"]),
        (["--handoff", "h"], ["--handoff", "h"]),  # ours: left alone
        (["-handoff-dir", "h"], ["--handoff", "h", "--go-flag", "handoff=-handoff-dir"]),
        (["-once"], ["--once", "--go-flag", "once=-once"]),
        (["-once=true"], ["--once", "--go-flag", "once=-once"]),
        (["-once=false"], []),
        (["-mode", "structured"], ["--mode", "structured", "--go-flag", "mode=-mode"]),
        (["-debounce=1s"], ["--debounce", "1s", "--go-flag", "debounce=-debounce"]),
        (["-schema", "s.json"], ["--intent-schema", "s.json", "--go-flag", "intent-schema=-schema"]),
        (["-period", "0"], ["--watch", "inotify", "--go-flag", "watch=-period"]),
        (
            ["-period", "2s"],
            ["--watch", "poll", "--poll-interval", "2s", "--go-flag", "watch=-period",
             "--go-flag", "poll-interval=-period"],
        ),
        (["--period=100ms"], ["--watch", "poll", "--poll-interval", "100ms", "--go-flag", "watch=--period",
                                  "--go-flag", "poll-interval=--period"]),
        (["-period", "1h"], ["--watch", "poll", "--poll-interval", "1h", "--go-flag", "watch=-period",
                                 "--go-flag", "poll-interval=-period"]),
        (["-porch-url", "http://x"], []),
        (["-use-processor=false"], []),
        (["-h"], ["--help"]),
        (["-help"], ["--help"]),
        (["--retries", "-1"], ["--retries", "-1"]),  # a value of ours is never read as a flag
        (["--", "-weird"], ["--", "-weird"]),
    ],
)
def test_translate(argv: list[str], expected: list[str]) -> None:
    assert translate(argv, VALUE_OPTIONS).argv == expected


def test_porch_url_warns_once() -> None:
    done = translate(["-porch-url", "http://porch:8080", "-once"], VALUE_OPTIONS)
    assert done.argv == ["--once", "--go-flag", "once=-once"]
    assert len(done.warnings) == 1 and "-porch-url has no effect" in done.warnings[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-period", "50ms"], "invalid value '50ms' for flag -period: must be 0 or between 100ms and 1h"),
        (["-period", "2h"], "must be 0 or between 100ms and 1h"),
        (["-period", "soon"], "invalid value 'soon' for flag -period"),
        (["-period"], "flag needs an argument: -period"),
        (["-frobnicate"], "unknown option -frobnicate"),
        (["-p"], "unknown option -p"),
        (["-once=maybe"], "invalid boolean value 'maybe' for flag -once"),
        (["-use-processor"], "-use-processor: the Go loop's processor mode"),
        (["-batch-size", "10"], "-batch-size: the Go loop's processor mode"),
        (["-batch-interval=2s"], "-batch-interval: the Go loop's processor mode"),
        (["-error-dir", "e"], "-error-dir: the Go loop's processor mode"),
        (["-porch-mode", "direct"], "-porch-mode: the Go loop's processor mode"),
    ],
)
def test_refused(argv: list[str], message: str) -> None:
    with pytest.raises(GoFlagError, match=None) as info:
        translate(argv, VALUE_OPTIONS)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_label_sources() -> None:
    sources = {"watch": "flag", "poll_interval": "flag", "handoff": "flag", "out": "env CONDUCTOR_OUT"}
    label_sources(sources, ["watch=-period", "poll-interval=-period", "out=-out"])
    assert sources == {
        "watch": "flag -period (Go)",
        "poll_interval": "flag -period (Go)",
        "handoff": "flag",  # given as --handoff
        "out": "env CONDUCTOR_OUT",  # not set by a flag at all
    }


# ----------------------------------------------------------------------------- through the real CLI


def test_unknown_single_dash_word_is_named_as_typed(tmp_path: Path) -> None:
    r = run_cli("-handoff", str(tmp_path / "h"), "-once", "-frobnicate", "x")
    assert r.returncode == 2
    assert r.stderr.strip() == "conductor-loop: unknown option -frobnicate"


def test_processor_mode_refused_in_one_line(tmp_path: Path) -> None:
    r = run_cli("-handoff", str(tmp_path / "h"), "-use-processor", "-batch-size", "5")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "processor mode" in lines[0] and "--porch" in lines[0]
    assert not (tmp_path / "h").exists()  # refused before anything was touched


def test_help_spellings_exit_0() -> None:
    for spelling in ("-h", "-help", "--help"):
        r = run_cli("run", spelling)
        assert r.returncode == 0 and "--handoff" in r.stdout, spelling
    r = run_cli("-help")
    assert r.returncode == 0 and "--poll-interval" in r.stdout


def test_period_out_of_range_names_the_flag(tmp_path: Path) -> None:
    r = run_cli("-handoff", str(tmp_path / "h"), "-once", "-period", "10ms")
    assert r.returncode == 2 and "-period" in r.stderr and "100ms" in r.stderr


def test_go_command_line_runs(tmp_path: Path) -> None:
    handoff, out = tmp_path / "h", tmp_path / "o"
    handoff.mkdir()
    write_intent(handoff, "intent-a.json")
    r = run_cli("-handoff", str(handoff), "-porch", "builtin", "-once", "-out=" + str(out), "-period", "2s",
                "-porch-url", "http://porch:8080")
    assert r.returncode == 0, r.stderr
    assert "processed 1" in r.stdout
    assert r.stderr.count("-porch-url has no effect") == 1
    assert (handoff / "processed" / "intent-a.json").exists()


def test_config_show_accepts_go_spellings_and_names_them(tmp_path: Path) -> None:
    r = run_cli("config", "show", "--json", "-handoff", str(tmp_path / "h"), "-period", "2s", "--out", "o")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["handoff"] == {"value": str(tmp_path / "h"), "source": "flag -handoff (Go)"}
    assert doc["watch"] == {"value": "poll", "source": "flag -period (Go)"}
    assert doc["poll_interval"] == {"value": "2s", "source": "flag -period (Go)"}
    assert doc["out"]["source"] == "flag"
    r = run_cli("config", "show", "-handoff", "x", "-period", "50ms")
    assert r.returncode == 2 and "-period" in r.stderr


def test_config_show_says_what_auto_picks(tmp_path: Path) -> None:
    r = run_cli("config", "show", "--json", "--handoff", str(tmp_path))
    assert r.returncode == 0, r.stderr
    watch = json.loads(r.stdout)["watch"]
    assert watch["source"] == "default"
    assert watch["value"].startswith("auto: inotify (") and "is local" in watch["value"]
