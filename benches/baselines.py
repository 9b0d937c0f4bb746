"""Helpers for the end-to-end benchmarks (bench_once.py, bench_latency.py): intent corpora and baselines.

The baselines are what the loop is compared with, measured in the same run on the same filesystem:

- :func:`file_floor` — the file-operation floor: a bare ``multiprocessing.Pool`` over all CPUs doing only
  the per-intent file work of the contract (read the intent, write the package's two files, write the
  status file, rename the intent into ``processed/``); no validation, state, supervision or fsync.
- :func:`spawn_rate` — the raw spawn rate: one process per CPU, each ``posix_spawn``-ing a program and
  waiting for it, nothing else.
- :func:`shell_pipeline` — what a user would write instead of the loop:
  ``ls | xargs -P<cpus> -I{} sh -c '<porch> -intent "$1" -out out && mv "$1" processed/' _ {}``.

Every function takes its wall time itself (pool start-up included) and returns seconds.
Imported by the bench files as ``baselines`` (pytest prepends ``benches/`` to ``sys.path``); not a test module.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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


def remove_tree(path: Path) -> None:
    """Remove a scratch directory, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


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


# -- (a) the file-operation floor ---------------------------------------------------------------

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
    '"timestamp": "{ts}", "processed_by": "conductor-loop", "mode": "direct", "porch_path": "builtin", '
    '"size": {size}, "moved_to": "{moved}", "output_dir": "{out}"}}\n'
)


def _floor_one(job: tuple[str, str]) -> None:
    """The per-intent file work of the contract and nothing else (runs in a pool worker)."""
    path, out = job
    with open(path, "rb") as f:
        data = f.read()
    d = json.loads(data)
    target, ns, replicas = d["target"], d["namespace"], d["replicas"]
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    name = f"{target}-scaling"
    pkg = os.path.join(out, ns, name)
    os.makedirs(pkg, exist_ok=True)
    with open(os.path.join(pkg, "Kptfile"), "w") as f:
        f.write(_KPTFILE.format(name=name, target=target, ns=ns, replicas=replicas))
    with open(os.path.join(pkg, "scaling-patch.yaml"), "w") as f:
        f.write(_PATCH.format(target=target, ns=ns, ts=ts, replicas=replicas))
    handoff, base = os.path.split(path)
    moved = os.path.join(handoff, "processed", base)
    status = os.path.join(handoff, "status", base + ".status")
    with open(status, "w") as f:
        f.write(_STATUS.format(intent=path, ts=ts, size=len(data), moved=moved, out=pkg))
    os.rename(path, moved)


def file_floor(handoff: Path, out: Path, processes: int = CPUS) -> float:
    """Run the file-operation floor over every intent in ``handoff``; wall seconds incl. pool start-up."""
    t0 = time.perf_counter()
    (handoff / "processed").mkdir(exist_ok=True)
    (handoff / "status").mkdir(exist_ok=True)
    jobs = [(e.path, str(out)) for e in os.scandir(handoff) if e.name.startswith("intent-") and e.is_file()]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        pool.map(_floor_one, jobs, chunksize=max(1, len(jobs) // (processes * 16)))
    return time.perf_counter() - t0


# -- (b) the raw spawn rate ---------------------------------------------------------------------


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


# -- (c) the shell pipeline a user would write -------------------------------------------------


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
