"""Intent validation: every rejection reason, and valid examples (real files, the real Rust core)."""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import pickle
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from conductor_loop.validate import (
    Intent,
    IntentVanished,
    ValidationError,
    parse_intent,
    read_intent,
    validate_path,
)

MINIMAL: dict[str, Any] = {"intent_type": "scaling", "target": "odu", "namespace": "oran", "replicas": 3}
SCHEMA_EXAMPLE: dict[str, Any] = json.loads(
    resources.files("conductor_loop").joinpath("schema/intent.schema.json").read_text()
)["examples"][0]
MAX = 10 * 1024 * 1024


def reason_of(content: bytes) -> str:
    with pytest.raises(ValidationError) as info:
        parse_intent(content)
    return info.value.reason


def with_(**changes: Any) -> bytes:
    data = dict(MINIMAL)
    data.update(changes)
    return json.dumps(data).encode()


# --- valid ---------------------------------------------------------------------------------------


def test_schema_example_is_valid() -> None:
    intent = parse_intent(json.dumps(SCHEMA_EXAMPLE).encode())
    assert intent == Intent(
        intent_type="scaling",
        target="odu-high-phy",
        namespace="oran-odu",
        replicas=5,
        priority=8,
        correlation_id="scale-odu-workload-001",
        data=SCHEMA_EXAMPLE,
    )


def test_minimal_is_valid_with_defaults() -> None:
    intent = parse_intent(json.dumps(MINIMAL).encode())
    fields = (intent.intent_type, intent.target, intent.namespace, intent.replicas)
    assert fields == ("scaling", "odu", "oran", 3)
    assert intent.priority == 5
    assert intent.correlation_id is None
    assert dict(intent.data) == MINIMAL


@pytest.mark.parametrize("kind", ["scaling", "deployment", "configuration"])
def test_every_intent_type(kind: str) -> None:
    assert parse_intent(with_(intent_type=kind)).intent_type == kind


def test_bounds_and_names_at_the_limit_are_valid() -> None:
    name = "a" + "-b" * 31  # 63 characters
    assert len(name) == 63
    intent = parse_intent(with_(replicas=100, priority=0, target=name, namespace="0ns9", reason="r" * 512))
    assert (intent.replicas, intent.priority, intent.target) == (100, 0, name)
    assert parse_intent(with_(replicas=1, priority=10)).replicas == 1


def test_integral_float_counts_as_integer_and_is_normalised() -> None:
    intent = parse_intent(with_(replicas=3.0))
    assert intent.replicas == 3 and type(intent.replicas) is int


def test_whitespace_and_unicode_strings_are_fine() -> None:
    content = ("\n  " + json.dumps(dict(MINIMAL, reason="Zelle 123 — Lastspitze ✓")) + "\n").encode()
    assert parse_intent(content).data["reason"].endswith("✓")


def test_intent_pickles() -> None:
    intent = parse_intent(json.dumps(SCHEMA_EXAMPLE).encode())
    assert pickle.loads(pickle.dumps(intent)) == intent


# --- encoding and JSON ---------------------------------------------------------------------------


def test_bad_utf8() -> None:
    assert reason_of(b'{"a": "\xff"}') == "not UTF-8: invalid start byte at offset 7"


def test_truncated_utf8() -> None:
    assert reason_of('{"a": "é'.encode()[:-1]).startswith("not UTF-8: unexpected end of data")


def test_bom_rejected() -> None:
    assert "byte-order mark" in reason_of(b"\xef\xbb\xbf" + json.dumps(MINIMAL).encode())


def test_not_json() -> None:
    reason = reason_of(b'{\n  "a": 1,\n  "b": 2\n  "c": 3}')
    assert reason == "not JSON: Expecting ',' delimiter at line 4 column 3"


@pytest.mark.parametrize("content", [b"", b"   \n"])
def test_empty(content: bytes) -> None:
    assert reason_of(content) == "not JSON: the file is empty"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants(constant: str) -> None:
    content = json.dumps(MINIMAL)[:-1].encode() + f', "reason": {constant}}}'.encode()
    assert reason_of(content) == f"not JSON: {constant} is not a valid JSON value"


def test_duplicate_keys() -> None:
    assert reason_of(b'{"replicas": 1, "replicas": 50}') == "not JSON: duplicate key 'replicas'"


@pytest.mark.parametrize(
    ("content", "kind"), [(b"[]", "array"), (b'"x"', "string"), (b"3", "integer"), (b"null", "null")]
)
def test_top_level_not_object(content: bytes, kind: str) -> None:
    assert reason_of(content) == f"not an intent: the top level is a JSON {kind}, not an object"


def nested(levels_below_constraints: int) -> bytes:
    inner = "[" * levels_below_constraints + "]" * levels_below_constraints
    return json.dumps(MINIMAL)[:-1].encode() + f', "constraints": {{"deep": {inner}}}}}'.encode()


def test_depth_64_accepted() -> None:
    # top-level object (1) + constraints (2) + 62 arrays = 64
    assert parse_intent(nested(62)).data["constraints"]["deep"] is not None


def test_depth_65_rejected() -> None:
    assert reason_of(nested(63)) == "JSON nested deeper than 64 levels"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_100k_deep_gives_depth_error_not_recursion_error(opener: bytes) -> None:
    assert reason_of(opener * 100_000) == "JSON nested deeper than 64 levels"


def test_many_brackets_but_shallow_is_fine() -> None:
    content = json.dumps(dict(MINIMAL, constraints={"list": [[i] for i in range(500)]})).encode()
    assert parse_intent(content).replicas == 3


# --- schema --------------------------------------------------------------------------------------


def test_bad_intent_type() -> None:
    assert reason_of(with_(intent_type="delete")) == (
        "schema: intent_type: must be one of 'scaling', 'deployment', 'configuration'"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0, "schema: replicas: must be >= 1"),
        (101, "schema: replicas: must be <= 100"),
        ("3", "schema: replicas: must be integer, got string"),
        (3.5, "schema: replicas: must be integer, got number"),
        (True, "schema: replicas: must be integer, got boolean"),
        (None, "schema: replicas: must be integer, got null"),
    ],
)
def test_bad_replicas(value: Any, reason: str) -> None:
    assert reason_of(with_(replicas=value)) == reason


def test_bad_priority() -> None:
    assert reason_of(with_(priority=11)) == "schema: priority: must be <= 10"


def test_unknown_fields_named() -> None:
    assert reason_of(with_(foo=1, bar=2)) == "unknown field(s): bar, foo"


def test_missing_fields_named() -> None:
    data = dict(MINIMAL)
    del data["replicas"], data["namespace"]
    assert reason_of(json.dumps(data).encode()) == "missing required field(s): namespace, replicas"


@pytest.mark.parametrize(
    "name", ["Foo_Bar", "UPPER", "-lead", "trail-", "a.b", "a" * 64, "with space", "ünï", "a\nb", "../x"]
)
def test_bad_dns_names(name: str) -> None:
    assert reason_of(with_(target=name)).startswith(f"target: {name!r} is not a DNS-1123 name")
    assert reason_of(with_(namespace=name)).startswith(f"namespace: {name!r} is not a DNS-1123 name")


def test_both_bad_names_joined() -> None:
    reason = reason_of(with_(target="A", namespace="B"))
    assert reason.startswith("target: 'A' is not a DNS-1123 name")
    assert "; namespace: 'B' is not a DNS-1123 name" in reason


def test_empty_target_is_a_schema_error() -> None:
    assert reason_of(with_(target="")) == "schema: target: must be at least 1 character"


def test_reason_too_long() -> None:
    assert reason_of(with_(reason="r" * 513)) == "schema: reason: must be at most 512 characters"


@pytest.mark.parametrize("stamp", ["2025-13-01T00:00:00Z", "2025-02-30T10:00:00Z", "2025-08-28", "yesterday"])
def test_bad_date_time(stamp: str) -> None:
    assert reason_of(with_(created_at=stamp)).startswith("schema: created_at: must be an RFC 3339 date-time")


def test_good_date_times() -> None:
    for stamp in ["2025-08-28T10:30:00Z", "2025-08-28T10:30:00.123+02:00"]:
        assert parse_intent(with_(updated_at=stamp)).data["updated_at"] == stamp


def test_bad_source_and_status() -> None:
    assert reason_of(with_(source="robot")).startswith("schema: source: must be one of")
    assert reason_of(with_(status="done")).startswith("schema: status: must be one of")


def test_nested_rule() -> None:
    reason = reason_of(with_(constraints={"max_replicas": 0}))
    assert reason == "schema: constraints.max_replicas: must be >= 1"


def test_parse_does_not_modify_example() -> None:
    before = copy.deepcopy(SCHEMA_EXAMPLE)
    parse_intent(json.dumps(SCHEMA_EXAMPLE).encode())
    assert before == SCHEMA_EXAMPLE


# --- files ---------------------------------------------------------------------------------------


def write(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def test_read_intent_valid(tmp_path: Path) -> None:
    content = json.dumps(SCHEMA_EXAMPLE).encode()
    digest, size, data, intent = read_intent(write(tmp_path / "intent-a.json", content), MAX)
    assert digest == hashlib.sha256(content).hexdigest()
    assert size == len(content) and data == content
    assert intent.target == "odu-high-phy"
    assert validate_path(str(tmp_path / "intent-a.json"), MAX) == []


def test_read_intent_invalid_carries_hash(tmp_path: Path) -> None:
    content = b'{"intent_type": "scaling",'
    with pytest.raises(ValidationError) as info:
        read_intent(write(tmp_path / "intent-a.json", content), MAX)
    assert info.value.reason.startswith("not JSON:")
    assert info.value.sha256 == hashlib.sha256(content).hexdigest()
    assert info.value.size == len(content)


def file_reason(path: str, max_size: int = MAX) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        read_intent(path, max_size)
    assert validate_path(path, max_size) == [info.value.reason]
    return info.value


def test_symlink_not_followed(tmp_path: Path) -> None:
    target = write(tmp_path / "real.json", json.dumps(MINIMAL).encode())
    os.symlink(target, tmp_path / "intent-link.json")
    exc = file_reason(str(tmp_path / "intent-link.json"))
    assert exc.reason == "not a regular file (symlink)"
    assert exc.sha256 is None


@pytest.mark.timeout(10)
def test_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "intent-fifo.json")
    assert file_reason(str(tmp_path / "intent-fifo.json")).reason == "not a regular file (FIFO)"


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "intent-dir.json").mkdir()
    assert file_reason(str(tmp_path / "intent-dir.json")).reason == "not a regular file (directory)"


@pytest.mark.timeout(10)
def test_device() -> None:
    assert file_reason("/dev/null").reason == "not a regular file (character device)"


def test_too_large(tmp_path: Path) -> None:
    path = write(tmp_path / "intent-big.json", b" " * 2000 + json.dumps(MINIMAL).encode())
    size = os.path.getsize(path)
    exc = file_reason(path, 1000)
    assert exc.reason == f"file is {size} bytes, larger than --max-file-size 1000"
    assert exc.size == size


def test_exactly_max_size_is_fine(tmp_path: Path) -> None:
    content = json.dumps(MINIMAL).encode()
    assert read_intent(write(tmp_path / "intent-a.json", content), len(content))[1] == len(content)


def test_missing_file(tmp_path: Path) -> None:
    exc = file_reason(str(tmp_path / "intent-gone.json"))
    assert exc.reason == "cannot read: No such file or directory"
    assert isinstance(exc, IntentVanished) and isinstance(exc, FileNotFoundError)
    assert exc.errno == errno.ENOENT


def test_bad_file_content_reason(tmp_path: Path) -> None:
    path = write(tmp_path / "intent-a.json", with_(replicas=101))
    assert validate_path(path, MAX) == ["schema: replicas: must be <= 100"]
