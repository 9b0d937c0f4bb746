"""Helpers for the end-to-end benchmarks (bench_once.py, bench_latency.py): intent corpora and baselines.

The baselines are what the loop is compared with, measured in the same run on the same filesystem:

- :func:`contract_floor` — the least the contract allows, durably: a bare ``multiprocessing.Pool`` over all
  CPUs doing, per intent, read + SHA-256 + JSON parse, the package's two files via temp + rename (or, for an
  external porch, ``posix_spawn`` in a new session + wait), the status file via temp + rename, a rename into
  ``processed/``; per 64 intents one ``syncfs`` and one SQLite commit (WAL, ``synchronous=FULL``) of the
  group's rows, before the group's renames. :func:`file_floor` (built-in porch) and :func:`spawn_floor`
  (``/bin/true``) are its two variants. No validation, templating, retries or supervision.
- :func:`spawn_rate` — the raw spawn rate: one process per CPU, each ``posix_spawn``-ing a program and
  waiting for it, nothing else (for comparisons by hand; the benches compare with the floors).
- :func:`shell_pipeline` — what a user would write instead of the loop:
  ``ls | xargs -P<cpus> -I{} sh -c '<porch> -intent "$1" -out out && mv "$1" processed/' _ {}``.

Every function takes its wall time itself (pool start-up included) and returns seconds.
Imported by the bench files as ``baselines`` (pytest prepends ``benches/`` to ``sys.path``); not a test module.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
"""The repository root."""

BENCH_TMP = REPO / "target" / "bench-tmp"
"""Scratch space for benchmarks: under ``target/`` (gitignored) so it is on the repository's filesystem."""

CPUS = os.cpu_count() or 1
"""CPUs of this machine (the loop's default worker ceiling, and the baselines' pool size)."""

NAMESPACES = ("oran-odu", "oran-cu", "oran-ric", "oran-smo")
REASONS = (
    "traffic peak in sector 123 during the evening busy hour",
    "planned maintenance window on the neighbouring cell site",
    "energy saving: low load forecast for the next four hours",
)


def scratch_dir(prefix: str) -> Path:
    """A fresh directory under :data:`BENCH_TMP` (the caller removes it with :func:`remove_tree`)."""
    BENCH_TMP.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=BENCH_TMP))


#: Where :func:`remove_tree` puts scratch directories until :func:`empty_trash` (the session's end).
TRASH = BENCH_TMP / f".trash-{os.getpid()}"


def remove_tree(path: Path) -> None:
    """Set a scratch directory aside for removal at the session's end, ignoring what is already gone.

    Nothing is deleted while figures are measured: on ext4 without a journal (these machines' root
    filesystem) the inode allocator skips inodes freed in the last 60 s (300 s while their inode-table block
    is dirty), scanning past each one, so every file a timed round creates shortly after a deletion of
    thousands costs up to 10 times its kernel time (``recently_deleted`` under ``ext4_create``, seen with
    ``perf record``). A rename frees no inode.
    """
    TRASH.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(path, TRASH / f"{path.name}-{time.monotonic_ns()}")
    except FileNotFoundError:
        pass
    except OSError:  # another filesystem, or a name clash: remove it now
        shutil.rmtree(path, ignore_errors=True)


def empty_trash() -> None:
    """Delete what :func:`remove_tree` set aside (``benches/conftest.py`` calls it at the session's end)."""
    shutil.rmtree(TRASH, ignore_errors=True)


def intent_body(i: int, tag: str = "bench") -> bytes:
    """A realistic intent of about 200 bytes with a target unique to ``i`` (valid per the schema)."""
    body = {
        "intent_type": "scaling",
        "target": f"odu-high-phy-{tag}-{i:06d}",
        "namespace": NAMESPACES[i % len(NAMESPACES)],
        "replicas": 1 + i % 100,
        "reason": REASONS[i % len(REASONS)],
        "source": "planner",
        "correlation_id": f"{tag}-{i:06d}",
        "priority": 5,
    }
    return json.dumps(body, indent=None, separators=(", ", ": ")).encode() + b"\n"


def intent_name(i: int) -> str:
    """The file name of intent ``i``."""
    return f"intent-{i:06d}.json"


def make_intents(handoff: Path, count: int, tag: str = "bench") -> list[Path]:
    """Write ``count`` distinct valid intents into ``handoff`` (created if missing); returns their paths."""
    handoff.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = handoff / intent_name(i)
        p.write_bytes(intent_body(i, tag))
        paths.append(p)
    return paths


def aged_backlog(handoff: Path, out: Path, count: int) -> list[Path]:
    """:func:`make_intents` older than the loop's debounce (a backlog present at start: the loop takes it at
    once instead of waiting for it to settle; the baselines never wait), an empty ``out``, all synced."""
    settled = time.time() - 60
    paths = make_intents(handoff, count)
    for p in paths:
        os.utime(p, (settled, settled))
    out.mkdir()
    os.sync()
    return paths


# -- (a) the contract floor, durably -----------------------------------------------------------

#: Intents per group commit of the floors: one ``syncfs`` and one SQLite commit each.
FLOOR_GROUP = 64

_KPTFILE = (
    "apiVersion: kpt.dev/v1\n"
    "kind: Kptfile\n"
    "metadata:\n"
    '  name: "{name}"\n'
    "  annotations:\n"
    '    config.kubernetes.io/local-config: "true"\n'
    "info:\n"
    '  description: "scaling intent: deployment {target} in namespace {ns}, replicas {replicas}"\n'
)
_PATCH = (
    "apiVersion: apps/v1\n"
    "kind: Deployment\n"
    "metadata:\n"
    '  name: "{target}"\n'
    '  namespace: "{ns}"\n'
    "  annotations:\n"
    '    nephoran.io/intent-type: "scaling"\n'
    '    nephoran.io/generated-at: "{ts}"\n'
    '    config.kubernetes.io/merge-policy: "replace"\n'
    "spec:\n"
    "  replicas: {replicas}\n"
)
_STATUS = (
    '{{"intent_file": "{intent}", "status": "success", "message": "package written", '
    '"timestamp": "{ts}", "processed_by": "conductor-loop", "mode": "direct", "porch_path": "{porch}", '
    '"sha256": "{sha}", "size": {size}, "moved_to": "{moved}", "output_dir": "{out}"}}\n'
)
_SCHEMA = "CREATE TABLE IF NOT EXISTS intents (path TEXT PRIMARY KEY, sha256 TEXT, status TEXT, moved_to TEXT)"


def _write_atomic(path: str, text: str) -> None:
    """Temp file + rename, no fsync (the group's ``syncfs`` makes it durable)."""
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


_LIBC = ctypes.CDLL(None, use_errno=True)


def _syncfs(fd: int) -> None:
    if _LIBC.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class _Floor:
    """One floor process: its SQLite connection (WAL, ``synchronous=FULL``) and a handoff descriptor."""

    conn: sqlite3.Connection
    fd: int

    @classmethod
    def open(cls, db: str, handoff: str) -> None:
        """Pool initializer: open the state and the handoff for this process."""
        cls.conn = sqlite3.connect(db, isolation_level=None, timeout=30.0)
        cls.conn.execute("PRAGMA synchronous=FULL")
        cls.fd = os.open(handoff, os.O_RDONLY | os.O_DIRECTORY)


def _package(out: str, d: dict[str, Any], ts: str) -> str:
    """The built-in porch's two package files, each temp + rename; returns the package directory."""
    target, ns, replicas = d["target"], d["namespace"], d["replicas"]
    name = f"{target}-scaling"
    pkg = os.path.join(out, ns, name)
    os.makedirs(pkg, exist_ok=True)
    _write_atomic(os.path.join(pkg, "Kptfile"), _KPTFILE.format(name=name, target=target, ns=ns, replicas=replicas))
    patch = _PATCH.format(target=target, ns=ns, ts=ts, replicas=replicas)
    _write_atomic(os.path.join(pkg, "scaling-patch.yaml"), patch)
    return pkg


def _spawn(program: str, path: str, out: str) -> None:
    """``posix_spawn`` porch in a new session and wait for it."""
    pid = os.posix_spawn(program, [program, "-intent", path, "-out", out], _ENV, setsid=True)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{program} failed on {path}")


_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


FloorJob = tuple[list[str], str, str | None]
"""One group of the floor: its intents' paths, the output directory, the program spawned per intent (or None)."""


def _floor_group(job: FloorJob) -> None:
    """One group of the floor: per intent read + SHA-256 + JSON parse, the package files (or a spawn of
    ``program``), the status file; then one ``syncfs``, one SQLite commit of the group's rows, the moves."""
    paths, out, program = job
    rows = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        sha = hashlib.sha256(data).hexdigest()
        d = json.loads(data)
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if program is None:
            pkg = _package(out, d, ts)
        else:
            _spawn(program, path, out)
            pkg = out
        handoff, base = os.path.split(path)
        moved = os.path.join(handoff, "processed", base)
        status = os.path.join(handoff, "status", base + ".status")
        _write_atomic(status, _STATUS.format(intent=base, ts=ts, porch=program or "builtin", sha=sha,
                                             size=len(data), moved=moved, out=pkg))
        rows.append((path, sha, "success", moved))
    _syncfs(_Floor.fd)
    with _Floor.conn:
        _Floor.conn.execute("BEGIN")
        _Floor.conn.executemany("INSERT OR REPLACE INTO intents VALUES (?, ?, ?, ?)", rows)
    for path, _sha, _st, moved in rows:
        os.rename(path, moved)


def _floor_jobs(handoff: Path, out: Path, program: str | None) -> tuple[str, list[FloorJob]]:
    """The floor's state database (made) and its groups over every intent in ``handoff``."""
    (handoff / "processed").mkdir(exist_ok=True)
    (handoff / "status").mkdir(exist_ok=True)
    db = str(handoff / ".floor.sqlite3")
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
    paths = sorted(e.path for e in os.scandir(handoff) if e.name.startswith("intent-") and e.is_file())
    return db, [(paths[i : i + FLOOR_GROUP], str(out), program) for i in range(0, len(paths), FLOOR_GROUP)]


def contract_floor(handoff: Path, out: Path, program: str | None = None, processes: int = CPUS) -> float:
    """The least the contract allows, durably, over every intent in ``handoff``; wall seconds incl. start-up.

    A bare pool of ``processes`` doing, per intent: read, SHA-256 and JSON parse; the built-in porch's
    2 package files via temp + rename (or, with ``program``, a ``posix_spawn`` of it in a new session and
    a wait); the status file via temp + rename; a rename into ``processed/``. Per :data:`FLOOR_GROUP`
    intents: one ``syncfs`` and one SQLite commit (WAL, ``synchronous=FULL``) of the group's rows, before
    the group's renames (the contract's order: run, status, sync, commit, move).
    """
    t0 = time.perf_counter()
    db, jobs = _floor_jobs(handoff, out, program)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes, initializer=_Floor.open, initargs=(db, str(handoff))) as pool:
        pool.map(_floor_group, jobs, chunksize=1)
    return time.perf_counter() - t0


def floor_in_process(handoff: Path, out: Path, program: str | None = None) -> None:
    """:func:`contract_floor`'s work in this process alone, group after group (to measure its CPU per intent)."""
    db, jobs = _floor_jobs(handoff, out, program)
    _Floor.open(db, str(handoff))
    for job in jobs:
        _floor_group(job)


def file_floor(handoff: Path, out: Path) -> float:
    """(a) the built-in porch's contract floor (:func:`contract_floor` writing the package files)."""
    return contract_floor(handoff, out)


def spawn_floor(handoff: Path, out: Path) -> float:
    """(b) ``/bin/true``'s contract floor (:func:`contract_floor` spawning ``/bin/true`` per intent)."""
    return contract_floor(handoff, out, "/bin/true")


# -- the raw spawn rate ---------------------------------------------------------------------------


def _spawn_n(job: tuple[str, int]) -> int:
    """``posix_spawn`` ``program`` ``n`` times, one at a time, waiting for each; returns failures."""
    program, n = job
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    bad = 0
    for _ in range(n):
        pid = os.posix_spawn(program, [program], env)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            bad += 1
    return bad


def _split(total: int, parts: int) -> Iterator[int]:
    for k in range(parts):
        yield total // parts + (1 if k < total % parts else 0)


def spawn_rate(total: int, program: str = "/bin/true", processes: int = CPUS) -> float:
    """Spawn ``program`` ``total`` times from ``processes`` bare workers; wall seconds incl. start-up."""
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        failures = sum(pool.map(_spawn_n, [(program, n) for n in _split(total, processes)], chunksize=1))
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{failures} spawns of {program} failed")
    return elapsed


# -- the shell pipeline a user would write -----------------------------------------------------


def shell_pipeline(handoff: Path, out: Path, porch: str = "/bin/true", processes: int = CPUS) -> float:
    """``ls | xargs -P<cpus> sh -c '<porch> -intent "$1" -out <out> && mv "$1" processed/'`` in ``handoff``.

    The intent names are piped into ``xargs`` as ``ls`` would print them (one a line; listing them here
    instead of running ``ls`` keeps ``processed/`` out of the list and costs the pipeline nothing).
    ``shell=True`` is not used: ``xargs`` runs ``sh -c`` itself, as in the user's pipeline. Returns wall
    seconds.
    """
    (handoff / "processed").mkdir(exist_ok=True)
    names = sorted(e.name for e in os.scandir(handoff) if e.name.startswith("intent-") and e.is_file())
    script = f'{porch} -intent "$1" -out {out} && mv "$1" processed/'
    t0 = time.perf_counter()
    xargs = subprocess.run(
        ["xargs", f"-P{processes}", "-I{}", "sh", "-c", script, "_", "{}"],
        cwd=handoff,
        input="".join(n + "\n" for n in names).encode(),
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if xargs.returncode != 0:
        raise RuntimeError(f"xargs exited {xargs.returncode}")
    return elapsed
