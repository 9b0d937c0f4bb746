"""Accepting a result on the ingest: check it, unpack it safely, install the package, fold it into a result.

A result counts only if its task is in flight (:class:`~conductor_loop.fleet.flights.Flights` decides),
its sha256 matches the intent as it is NOW (else it is *stale*: dropped, the intent runs again), and its
archive passes :func:`~conductor_loop.fleet.archive.unpack_checked` (else the intent fails, with the
reason). The archive is unpacked into a private temporary directory inside ``out/`` (one filesystem, so
installing is a rename) and each *package* in it is installed by rename (the built-in porch's own
install: :func:`conductor_loop.porch.install_dir`). A package is the first directory down each path
that holds a regular file (``<namespace>/<target>-scaling`` for the built-in porch), or a top-level file.

Never over a newer intent's package: each installed package has an owner mark beside it
(``.<name>.cl-owner``: the intent's modification time in nanoseconds and its name), written before the
rename; a package whose mark is newer than this intent is left in place and the status says so. "Newer"
is the intent written later, so the order survives restarts and redeliveries.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from typing import Any

from conductor_loop import _core
from conductor_loop.execapi import ExecRequest, ExecResult
from conductor_loop.fleet.archive import HostileArchive, unpack_checked
from conductor_loop.fleet.flights import Flight
from conductor_loop.fleet.protocol import Result
from conductor_loop.porch import install_dir
from conductor_loop.records import WorkResult
from conductor_loop.worker import IntentProcessor

#: Private temporary directories of results being unpacked, directly in ``out/``.
TEMP_PREFIX = ".cl-fleet-"
OWNER_SUFFIX = ".cl-owner"

OrderKey = tuple[int, str]


def order_key(res: WorkResult) -> OrderKey:
    """How new an intent is: its modification time (ns) when it was read, then its name."""
    mtime = res.stat_key[2] if res.stat_key is not None else 0
    return mtime, os.path.basename(res.path)


def remove_stale_temps(out: str) -> int:
    """Remove what an interrupted accept left in ``out/`` (the loop holds the handoff: none is in use)."""
    removed = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(out) as it:
        stale = [e.path for e in it if e.name.startswith(TEMP_PREFIX) and e.is_dir(follow_symlinks=False)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def packages(root: str, rel: str = "") -> list[str]:
    """The packages under ``root``: the first directory down each path holding a regular file, or a file."""
    found: list[str] = []
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        sub = os.path.join(rel, e.name) if rel else e.name
        if e.is_file(follow_symlinks=False):
            found.append(sub)
        elif e.is_dir(follow_symlinks=False):
            with os.scandir(e.path) as inner:
                holds_file = any(x.is_file(follow_symlinks=False) for x in inner)
            found.extend([sub] if holds_file else packages(root, sub))
    return found


def _owner_path(final: str) -> str:
    return os.path.join(os.path.dirname(final), f".{os.path.basename(final)}{OWNER_SUFFIX}")


def read_owner(final: str) -> OrderKey | None:
    """The owner mark of the package at ``final``, if any."""
    try:
        with open(_owner_path(final), "rb") as fh:
            mtime, name = json.loads(fh.read(4096))
        return int(mtime), str(name)
    except (OSError, ValueError, TypeError):
        return None


def install(tmp: str, out: str, key: OrderKey) -> tuple[list[str], list[tuple[str, str]]]:
    """Install every package unpacked in ``tmp`` under ``out``: (installed paths, (skipped path, newer owner))."""
    installed: list[str] = []
    skipped: list[tuple[str, str]] = []
    for rel in packages(tmp):
        final = os.path.join(out, rel)
        owner = read_owner(final)
        if owner is not None and owner > key:
            skipped.append((final, owner[1]))
            continue
        os.makedirs(os.path.dirname(final), 0o755, exist_ok=True)
        _core.write_atomic(_owner_path(final), json.dumps([key[0], key[1]]).encode(), False, 0o644)
        install_dir(os.path.join(tmp, rel), final)
        installed.append(final)
    return installed, skipped


class RemoteExecutor:
    """Stands in for porch on the ingest: porch runs on the workers (its ``porch_path`` is what status files say)."""

    name = "fleet"

    def __init__(self, mode: str, fleet: str) -> None:
        self.mode = mode
        self.porch_path = f"fleet:{fleet}"

    def execute(self, req: ExecRequest) -> ExecResult:
        """Never called: the ingest publishes the request as a task."""
        raise RuntimeError("porch runs on the fleet's workers, not on the ingest")


class RemoteProcessor(IntentProcessor):
    """The worker's per-intent steps on the ingest (read once, hash, validate, dedupe; then the status);
    the status of a fleet result names the worker that ran porch and the task."""

    fleet_fields: dict[str, Any] | None = None

    def status_for(self, res: WorkResult, moved_to: str | None) -> dict[str, Any]:
        """The worker's status document, plus ``worker`` (the worker's id) and ``fleet_task``."""
        doc = super().status_for(res, moved_to)
        if self.fleet_fields:
            doc.update(self.fleet_fields)
        return doc


class Acceptor:
    """Turns an in-flight task's result into the loop's ``WorkResult`` (status written for a final one)."""

    def __init__(self, processor: RemoteProcessor, out: str, max_file_size: int) -> None:
        self.processor = processor
        self.out = out
        self.max_file_size = max_file_size

    def current_sha(self, path: str) -> str | None:
        """The intent's sha256 now; ``None`` when it is gone."""
        try:
            return _core.sha256_file(path, self.max_file_size)[0]
        except FileNotFoundError:
            return None
        except OSError:
            return ""

    def accept(self, f: Flight, r: Result, cap: int) -> tuple[WorkResult, str]:
        """The result of ``f`` (its sha256 checked by the caller) and the outcome label for the metrics."""
        out = _exec_result(r)
        label = "ok" if r.ok else "failed"
        if r.ok and os.path.lexists(f.path):
            try:
                out, label = self._install(f, r, out, cap)
            except HostileArchive as exc:
                out, label = _refused(f"result archive refused: {exc}", r), "refused"
            except OSError as exc:
                out = ExecResult(False, f"cannot install the result under {self.out}: {exc.strerror or exc}",
                                 None, None, False, True, None, "", "", r.duration_ms)
                label = "failed"
        return self.fold(f, out, worker=r.worker, delivery=r.delivery), label

    def fold(self, f: Flight, out: ExecResult, *, worker: str, delivery: int) -> WorkResult:
        """Fold an executor outcome into the flight's result and, when final, write its status."""
        res = f.res
        self.processor.executed(res, f.item, out)
        self.processor.fleet_fields = {"worker": worker, "fleet_task": f.task_id, "delivery": delivery}
        try:
            return self.processor.finish(res, f.t0)
        finally:
            self.processor.fleet_fields = None

    def _install(self, f: Flight, r: Result, out: ExecResult, cap: int) -> tuple[ExecResult, str]:
        if not r.archive:
            return out, "ok"
        tmp = os.path.join(self.out, f"{TEMP_PREFIX}{secrets.token_hex(8)}")
        try:
            unpack_checked(r.archive, tmp, cap)
            installed, skipped = install(tmp, self.out, order_key(f.res))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        message = out.message
        if skipped:
            kept = ", ".join(f"{os.path.relpath(p, self.out)} (by {who})" for p, who in skipped)
            message = f"{message}; package left in place, a newer intent installed it: {kept}".lstrip("; ")
        first = installed[0] if installed else None
        result = ExecResult(out.ok, message, out.exit_code, out.signal, out.timed_out, out.retryable, first,
                            out.stdout_tail, out.stderr_tail, out.duration_ms)
        return result, "superseded" if skipped and not installed else "ok"


def _exec_result(r: Result) -> ExecResult:
    return ExecResult(r.ok, r.message, r.exit_code, r.signal, r.timed_out, r.retryable, None, r.stdout_tail,
                      r.stderr_tail, r.duration_ms)


def _refused(message: str, r: Result) -> ExecResult:
    return ExecResult(False, message, r.exit_code, None, False, False, None, "", "", r.duration_ms)


def failure(message: str, *, retryable: bool = False) -> ExecResult:
    """An outcome decided on the ingest (max-deliver reached, task bytes refused)."""
    return ExecResult(False, message, None, None, False, retryable, None, "", "", 0.0)
