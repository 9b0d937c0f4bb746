"""Hostile intent content: bounded parse, no Python internals or raw values in reasons (docs/SECURITY.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conductor_loop.validate import MAX_CONTAINERS, REASON_MAX, ValidationError, parse_intent
from conftest import VALID, run_cli, statuses, write_intent

pytestmark = pytest.mark.timeout(120)


def reason_of(content: bytes) -> str:
    with pytest.raises(ValidationError) as info:
        parse_intent(content)
    return info.value.reason


def test_ten_mebibytes_of_empty_objects_are_refused_before_parsing() -> None:
    code = (
        "import resource, sys; from conductor_loop.validate import parse_intent, ValidationError\n"
        f"data = b'[' + b'{{}},' * {10 * 1024 * 1024 // 3 - 1} + b'{{}}]'\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    parse_intent(data)\nexcept ValidationError as e:\n    print(e.reason)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    reason, grown_mib = out.stdout.strip().splitlines()
    assert reason.startswith("not an intent: too many JSON objects and arrays") and str(MAX_CONTAINERS) in reason
    assert int(grown_mib) < 50, f"parsing grew RSS by {grown_mib} MiB"  # a full parse takes ~500 MiB


def test_many_values_and_huge_integers_are_refused_with_plain_words() -> None:
    assert reason_of(b"[" + b"1," * 200_000 + b"1]").startswith("not an intent: too many JSON values")
    reason = reason_of(b'{"replicas": ' + b"9" * 5000 + b"}")
    assert reason == "not an intent: an integer with more than 30 digits"
    assert "sys." not in reason


def test_deep_nesting_still_says_so() -> None:
    assert reason_of(b"[" * 100_000) == "JSON nested deeper than 64 levels"
    assert reason_of(b'{"a": ' + b"[" * 70 + b"{}," * 20_000 + b"]" * 70 + b"}") == "JSON nested deeper than 64 levels"


def test_long_values_and_odd_keys_are_cut_and_escaped() -> None:
    long_target = json.dumps({**VALID, "target": "x" * 10_000}).encode()
    reason = reason_of(long_target)
    assert "(10002 characters)" in reason and len(reason) < 300
    reason = reason_of(json.dumps({**VALID, "k" * 10_000: 1, "evil\nkey": 2}).encode())
    assert len(reason) <= REASON_MAX + 60 and "\n" not in reason and '"evil\\nkey"' in reason


def test_whole_float_replicas_are_accepted_as_integers(tmp_path: Path) -> None:
    """Decision: ``replicas: 3.0`` is a whole number (JSON Schema's ``integer`` says so too): accepted, and
    the package says ``replicas: 3``. ``3.5`` is refused."""
    handoff, out = tmp_path / "h", tmp_path / "o"
    handoff.mkdir()
    write_intent(handoff, "intent-whole.json", replicas=3.0)
    write_intent(handoff, "intent-half.json", replicas=3.5)
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out))
    assert r.returncode == 8, r.stderr
    docs = statuses(handoff)
    assert docs["intent-whole.json"]["status"] == "success"
    assert docs["intent-half.json"]["status"] == "failed" and "replicas" in docs["intent-half.json"]["message"]
    patch = yaml.safe_load(next(out.rglob("scaling-patch.yaml")).read_text())
    assert patch["spec"]["replicas"] == 3 and isinstance(patch["spec"]["replicas"], int)


def test_validate_command_prints_no_traceback_for_hostile_files(tmp_path: Path) -> None:
    files = {
        "intent-big-int.json": b'{"replicas": ' + b"1" * 10_000 + b"}",
        "intent-objects.json": b"[" + b"{}," * 50_000 + b"{}]",
        "intent-nul.json": b'{"target": "a\\u0000b"}',
        "intent-bytes.json": b"\xff\xfe{}",
    }
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    r = run_cli("validate", *(str(tmp_path / n) for n in files))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr + r.stdout
    assert len(r.stdout.strip().splitlines()) == len(files)
