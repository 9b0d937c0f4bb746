"""Benchmarks of conductor_loop._core against the standard library, measured in the same run.

- ``sha256_file`` on a 1 GiB file of real (non-sparse) data vs ``hashlib.file_digest``: target >= 1.0x.
- ``sha256_files`` on 20,000 files of ~1 KiB vs a single-threaded hashlib loop: target >= 2.5x.
- filing (a status file and two moves per intent) through ``_core.Anchor`` vs the path-based functions,
  interleaved rounds: target >= 0.95x (no slower, within this machine's noise).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import baselines  # benches/ is on sys.path (pytest prepends a test file's directory)
from conductor_loop import _core

BestOf = Callable[[int, Callable[[], object]], float]

GIB = 1024**3
SMALL_FILES = 20_000


@pytest.fixture(scope="session")
def big_file() -> Iterator[Path]:
    """1 GiB of random data (a 16 MiB random block written 64 times: real blocks, not sparse).

    In the benchmarks' scratch space (``baselines.scratch_dir``), whose filesystem is part of the machine
    kind the history compares runs under (``history.py``); removed at the end of the session.
    """
    d = baselines.scratch_dir("core-big-")
    p = d / "big.bin"
    block = os.urandom(16 * 1024 * 1024)
    with open(p, "wb") as f:
        for _ in range(GIB // len(block)):
            f.write(block)
    yield p
    baselines.remove_tree(d)


@pytest.fixture(scope="session")
def small_files() -> Iterator[list[str]]:
    """20,000 files of about 1 KiB each, in the benchmarks' scratch space (removed at the end)."""
    d = baselines.scratch_dir("core-small-")
    paths = []
    for i in range(SMALL_FILES):
        p = d / f"intent-{i:05d}.json"
        p.write_bytes(os.urandom(1000 + i % 48))
        paths.append(str(p))
    yield paths
    baselines.remove_tree(d)


def hashlib_file(path: Path) -> str:
    """``hashlib.file_digest`` (Python >= 3.11; a 256 KiB read loop before)."""
    with open(path, "rb") as f:
        file_digest = getattr(hashlib, "file_digest", None)
        if file_digest is not None:
            return str(file_digest(f, "sha256").hexdigest())
        h = hashlib.sha256()
        while chunk := f.read(1 << 18):
            h.update(chunk)
        return h.hexdigest()


def hashlib_loop(paths: list[str]) -> list[tuple[str, int]]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        out.append((hashlib.sha256(data).hexdigest(), len(data)))
    return out


@pytest.mark.timeout(600)
def test_bench_sha256_file_1gib(
    benchmark: Any, record_figure: Any, best_of: BestOf, big_file: Path
) -> None:
    want = hashlib_file(big_file)  # also warms the page cache
    result = benchmark.pedantic(_core.sha256_file, args=(str(big_file),), rounds=3, iterations=1)
    assert result == (want, GIB)
    base = best_of(3, lambda: hashlib_file(big_file))
    record_figure(
        benchmark,
        figure="sha256_file 1 GiB",
        value=GIB / 2**20 / benchmark.stats.stats.min,
        unit="MiB/s",
        baseline_name="hashlib.file_digest",
        baseline_value=GIB / 2**20 / base,
        target_ratio=1.0,
    )


@pytest.mark.timeout(600)
def test_bench_sha256_files_20k(
    benchmark: Any, record_figure: Any, best_of: BestOf, small_files: list[str]
) -> None:
    want = hashlib_loop(small_files)  # warms the page cache and dentries
    result = benchmark.pedantic(_core.sha256_files, args=(small_files,), rounds=5, iterations=1)
    assert result == want
    base = best_of(5, lambda: hashlib_loop(small_files))
    record_figure(
        benchmark,
        figure=f"sha256_files {SMALL_FILES} x 1 KiB",
        value=SMALL_FILES / benchmark.stats.stats.min,
        unit="files/s",
        baseline_name="hashlib loop, 1 thread",
        baseline_value=SMALL_FILES / base,
        target_ratio=2.5,
    )


FILINGS = 500


def _filing_round(write: Callable[..., None], move: Callable[[str, str], str], paths: dict[str, list[str]]) -> None:
    """What the loop does per intent below the handoff: a status file, a move into processed/ (and back)."""
    for status, src, filed in zip(paths["status"], paths["src"], paths["filed"], strict=True):
        write(status, b'{"status": "success"}\n' * 20, False, 0o640)
        move(src, paths["processed"][0])
        move(filed, paths["root"][0])


@pytest.mark.timeout(600)
def test_bench_anchor_filing(benchmark: Any, record_figure: Any) -> None:
    """Writes and moves through ``_core.Anchor`` (descriptor-relative, links refused) vs by path, interleaved."""
    root = baselines.scratch_dir("core-anchor-")
    (root / "status").mkdir()
    (root / "processed").mkdir()
    names = [f"intent-{i:04d}.json" for i in range(FILINGS)]
    for n in names:
        (root / n).write_bytes(b"{}")
    paths = {
        "status": [str(root / "status" / f"{n}.status") for n in names],
        "src": [str(root / n) for n in names],
        "filed": [str(root / "processed" / n) for n in names],
        "processed": [str(root / "processed")],
        "root": [str(root)],
    }
    anchor = _core.Anchor(str(root))
    kinds = {"anchor": (anchor.write_atomic, anchor.move_noclobber), "path": (_core.write_atomic, _core.move_noclobber)}
    best = dict.fromkeys(kinds, float("inf"))
    pairs = [0]

    def pair() -> None:  # one round of each, the order alternating (the round after another one is slower)
        order = list(kinds) if pairs[0] % 2 else list(reversed(kinds))
        pairs[0] += 1
        for kind in order:
            t0 = time.perf_counter()
            _filing_round(*kinds[kind], paths)
            best[kind] = min(best[kind], time.perf_counter() - t0)

    try:
        benchmark.pedantic(pair, rounds=20, iterations=1)
    finally:
        baselines.remove_tree(root)
    record_figure(
        benchmark,
        figure=f"filing {FILINGS} intents (status + 2 moves) through Anchor",
        value=FILINGS / best["anchor"],
        unit="intents/s",
        baseline_name="the same by path (_core.write_atomic, move_noclobber)",
        baseline_value=FILINGS / best["path"],
        target_ratio=0.95,
    )
