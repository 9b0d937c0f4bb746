"""conductor_loop._core.fit_name: the one rule for shortening names, checked against the Python rule it replaces."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conductor_loop import _core


def python_fit_name(name: str, suffix: str = "", limit: int = 255) -> str:
    """The algorithm ``names.fit_name`` used before Rust owned it (kept here as the reference)."""
    full = name + suffix
    raw = full.encode("utf-8", "surrogateescape")
    if len(raw) <= limit:
        return full
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    tail = "~" + digest + suffix
    room = limit - len(tail.encode("utf-8", "surrogateescape"))
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a name within {limit} bytes")
    prefix = name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return prefix + tail


EXAMPLES: list[tuple[str, str, int]] = [
    ("intent-a.json", "", 255),
    ("intent-a.json", ".status", 255),
    ("a" * 248, ".status", 255),  # exactly 255
    ("a" * 249, ".status", 255),  # one over
    ("a" * 300, ".error.log", 255),
    ("é" * 200, ".status", 255),  # cut inside a two-byte character
    ("日本語" * 40, ".json", 255),  # three-byte characters
    ("🙂" * 70, "", 255),  # four-byte characters
    ("x" * 10 + "é" * 150, ".20260115T101502.123Z.json", 255),
    ("bad\udcffbytes" + "z" * 300, ".status", 255),  # undecodable byte from the filesystem
    ("n" * 40, "\udcfe.s", 30),  # undecodable byte in the suffix
    ("é" * 50, "", 18),  # room for one byte only: the cut character is dropped
    ("long-name" * 5, "", 20),
]


@pytest.mark.parametrize(("name", "suffix", "limit"), EXAMPLES)
def test_same_as_the_python_rule(name: str, suffix: str, limit: int) -> None:
    got = _core.fit_name(name, suffix, limit)
    assert got == python_fit_name(name, suffix, limit)
    assert len(got.encode("utf-8", "surrogateescape")) <= limit


def test_defaults_and_distinct_results() -> None:
    assert _core.fit_name("intent-a.json") == "intent-a.json"
    assert _core.fit_name("intent-a.json", ".status") == "intent-a.json.status"
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    fa, fb = _core.fit_name(long_a, ".status"), _core.fit_name(long_b, ".status")
    assert fa != fb
    assert len(fa.encode()) == _core.NAME_MAX
    assert fa == "a" * (255 - 17 - 7) + "~" + hashlib.sha256(long_a.encode()).hexdigest()[:16] + ".status"


@pytest.mark.parametrize(("name", "suffix", "limit"), [("a" * 30, "", 17), ("a" * 300, "s" * 240, 255), ("ab", "", -1)])
def test_no_room_is_a_value_error(name: str, suffix: str, limit: int) -> None:
    with pytest.raises(ValueError, match="no room"):
        _core.fit_name(name, suffix, limit)
    if limit >= 0:
        with pytest.raises(ValueError):
            python_fit_name(name, suffix, limit)


def test_conflict_names_use_the_same_rule(tmp_path: Path) -> None:
    """``move_noclobber`` shortens a long name with the 16-digit tag of :func:`_core.fit_name`."""
    src_dir, dst = tmp_path / "src", tmp_path / "dst"
    src_dir.mkdir()
    dst.mkdir()
    stem = "é" * 120  # 240 bytes: the name fits, a conflict name does not
    for i in range(2):
        (src_dir / f"{stem}.json").write_text(str(i))
        final = Path(_core.move_noclobber(str(src_dir / f"{stem}.json"), str(dst)))
    assert final.parent == dst
    assert final.name.endswith(".json")
    middle = final.name[: -len(".json")]
    fitted = _core.fit_name(stem, middle[middle.index("~") + 17 :] + ".json")
    assert final.name == fitted
