"""Operator commands besides ``run``: ``status``, ``retry``, ``state export|import|prune`` and ``config show``.

They work on a handoff directory whose loop may be running.  Reading commands (``status``,
``state export``) open the state read-only and never take the loop's lock for longer than a probe;
``retry`` only moves files into the handoff (a running loop picks them up); the commands that write the
state (``state import``, ``state prune``) refuse while a loop holds the lock, and hold the lock themselves
while they write, so a loop starting meanwhile is refused instead of racing them.

:func:`register` adds the commands to the top-level click group of :mod:`conductor_loop.cli`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from conductor_loop import _core
from conductor_loop.live_status import INTERVAL, watch_status
from conductor_loop.names import (
    ERROR_LOG_SUFFIX,
    FAILED,
    PROCESSED,
    STATE_DIR,
    PatternMatcher,
    error_log_name,
    status_name,
)

__all__ = [
    "LockProbe",
    "original_name",
    "probe_lock",
    "register",
    "status_report",
]

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2

LOCK_NAME = "lock"

#: The conflict suffix ``move_noclobber`` adds before the extension: ``.YYYYmmddTHHMMSS.mmmZ`` and an
#: optional counter (``intent-a.20260115T101502.123Z.2.json``).
_CONFLICT = re.compile(r"^(?P<stem>.+?)\.\d{8}T\d{6}\.\d{3}Z(?:\.\d+)?(?P<ext>\.[^.]{1,31})?$")


def _fail(code: int, message: str) -> None:
    click.echo(f"conductor-loop: {message}", err=True)
    sys.exit(code)


# ------------------------------------------------------------------------------ helpers


def _handoff(handoff: str | None, config: str | None) -> tuple[str, tuple[str, ...]]:
    """The handoff directory (absolute) and intent patterns, layered like ``run`` (flag > env > file)."""
    from conductor_loop.config import ConfigError, resolve

    cli: dict[str, Any] = {"handoff": handoff} if handoff else {}
    try:
        cfg, _ = resolve(cli, os.environ, config)
    except ConfigError as exc:
        _fail(EXIT_USAGE, str(exc))
        raise AssertionError("unreachable") from exc
    return os.path.abspath(cfg.handoff), tuple(cfg.patterns)


@dataclass(frozen=True, slots=True)
class LockProbe:
    """Whether a loop holds ``<handoff>/.conductor/lock``, and the pid it wrote there."""

    running: bool
    pid: int | None


def probe_lock(handoff: str) -> LockProbe:
    """Check, without keeping it, whether a loop holds the lock of ``handoff``.

    Takes a non-blocking shared ``flock`` for an instant: when that fails, a loop is running and its pid is
    read from the lock file.  A missing lock file means no loop ever ran here (nothing is created).
    """
    path = os.path.join(handoff, STATE_DIR, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return LockProbe(False, None)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            return LockProbe(True, int(text) if text.isdigit() else None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockProbe(False, None)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _exclusive(handoff: str, what: str) -> Any:
    """Hold the loop's lock while changing the state; exit 1 when a loop runs."""
    from conductor_loop.supervisor import LockHeld, acquire_lock

    os.makedirs(os.path.join(handoff, STATE_DIR), mode=0o700, exist_ok=True)
    try:
        fd = acquire_lock(handoff)
    except LockHeld as exc:
        _fail(EXIT_FATAL, f"cannot {what} while a loop is running: {exc}; stop it first")
        raise AssertionError("unreachable") from exc
    try:
        yield
    finally:
        os.close(fd)


def _count_files(directory: str, keep: Callable[[str], bool]) -> int:
    """Regular files in ``directory`` (not hidden, not error logs) for which ``keep(name)`` holds."""
    n = 0
    try:
        with os.scandir(directory) as it:
            for entry in it:
                name = entry.name
                if name.startswith(".") or name.endswith(ERROR_LOG_SUFFIX):
                    continue
                if entry.is_file(follow_symlinks=False) and keep(name):
                    n += 1
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return n


def _rfc3339(ts: Any) -> str | None:
    from conductor_loop.state import format_rfc3339

    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return None
    return format_rfc3339(float(ts))


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


# ------------------------------------------------------------------------------ status


def status_report(handoff: str, patterns: tuple[str, ...] = ("intent-*.json",), failures: int = 5) -> dict[str, Any]:
    """Everything ``conductor-loop status`` shows, as one JSON-serialisable dict.

    Keys: ``handoff``, ``files`` (``handoff``/``processed``/``failed`` counts), ``running``, ``pid``,
    ``live`` (the running loop's published figures plus ``age_seconds``, or ``None``), ``state``
    (per-status row counts, or ``None``), ``state_note`` (why there is no state, or ``None``),
    ``failures`` (newest first) and ``last_run`` (or ``None``).
    """
    from conductor_loop.state import StateError, StateStore

    matcher = PatternMatcher(patterns)
    report: dict[str, Any] = {
        "handoff": handoff,
        "files": {
            "handoff": _count_files(handoff, matcher.is_intent),
            "processed": _count_files(os.path.join(handoff, PROCESSED), lambda _n: True),
            "failed": _count_files(os.path.join(handoff, FAILED), lambda _n: True),
        },
        "running": False,
        "pid": None,
        "live": None,
        "state": None,
        "state_note": None,
        "failures": [],
        "last_run": None,
    }
    lock = probe_lock(handoff)
    report["running"], report["pid"] = lock.running, lock.pid
    try:
        store = StateStore(handoff, readonly=True)
    except FileNotFoundError:
        report["state_note"] = "no state yet"
        return report
    except (sqlite3.Error, StateError) as exc:
        report["state_note"] = f"state unreadable: {exc}"
        return report
    try:
        report["state"] = store.counts()
        report["failures"] = [
            {
                "name": os.path.basename(r.path),
                "path": r.path,
                "message": r.message,
                "processed_at": _rfc3339(r.processed_at),
                "moved_to": r.moved_to,
                "exit_code": r.exit_code,
            }
            for r in store.recent_failures(failures)
        ] if failures > 0 else []
        live = store.get_meta("live")
        if lock.running and isinstance(live, dict):
            updated = live.get("updated_at")
            live = dict(live)
            live["age_seconds"] = (
                round(time.time() - float(updated), 3) if isinstance(updated, (int, float)) else None
            )
            report["live"] = live
            if report["pid"] is None and isinstance(live.get("pid"), int):
                report["pid"] = live["pid"]
        last = store.get_meta("last_run")
        if isinstance(last, dict):
            last = dict(last)
            last["finished_at"] = _rfc3339(last.get("finished_at"))
            report["last_run"] = last
    except sqlite3.Error as exc:
        report["state_note"] = f"state unreadable: {exc}"
    finally:
        store.close()
    return report


def _status_text(rep: dict[str, Any]) -> list[str]:
    lines = [f"handoff   {rep['handoff']}"]
    if rep["running"]:
        pid = rep["pid"] if rep["pid"] is not None else "unknown"
        live = rep["live"]
        if live is None:
            lines.append(f"loop      running (pid {pid}); no live figures published yet")
        else:
            age = live.get("age_seconds")
            lines.append(f"loop      running (pid {pid}); live figures {_ago(age or 0.0)} old")
            started = live.get("started_at")
            up = f", up {_ago(time.time() - float(started))}" if isinstance(started, (int, float)) else ""
            lines.append(
                f"          queue {live.get('queue', '?')}, in flight {live.get('inflight', '?')}, "
                f"workers {live.get('workers', '?')} (busy {live.get('busy', '?')}){up}"
            )
    else:
        lines.append("loop      not running")
    f = rep["files"]
    lines.append(f"files     handoff {f['handoff']}   processed {f['processed']}   failed {f['failed']}")
    if rep["state"] is None:
        lines.append(f"state     {rep['state_note']}")
    else:
        s = rep["state"]
        lines.append(
            f"state     success {s['success']}   skipped {s['skipped']}   failed {s['failed']}   "
            f"claimed {s['claimed']}"
        )
    last = rep["last_run"]
    if last:
        lines.append(
            f"last run  processed {last.get('processed', 0)}, skipped {last.get('skipped', 0)}, "
            f"failed {last.get('failed', 0)} in {last.get('seconds', 0)}s, finished {last.get('finished_at')}"
        )
    if rep["failures"]:
        lines.append(f"failures  (last {len(rep['failures'])}, newest first)")
        for fail in rep["failures"]:
            when = (fail["processed_at"] or "?")[:19] + "Z"
            message = " ".join(str(fail["message"]).split())
            lines.append(f"  {when}  {fail['name']}  {message}")
    return lines


# ------------------------------------------------------------------------------ retry


def original_name(filed_name: str) -> str:
    """The intent name a filed name came from: the conflict suffix of ``move_noclobber`` removed.

    ``intent-a.20260115T101502.123Z.json`` and ``intent-a.20260115T101502.123Z.2.json`` →
    ``intent-a.json``; a name without such a suffix is returned unchanged.
    """
    m = _CONFLICT.match(filed_name)
    if m is None:
        return filed_name
    return m.group("stem") + (m.group("ext") or "")


def _fresh_name(name: str) -> str:
    """``name`` with a ``.YYYYmmddTHHMMSS.mmmZ`` suffix before its extension, like a filing conflict."""
    from datetime import datetime, timezone

    now = datetime.now(tz=timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 31:
        return f"{name}.{stamp}"
    return f"{stem}.{stamp}.{ext}"


def _deduped_by(store: Any, path: str, sha: str) -> bool:
    """True when the loop would skip content ``sha`` at ``path`` as already processed (SPEC §3.2)."""
    if store is None:
        return False
    row = store.get(path)
    return bool(row and row.status in ("success", "skipped") and row.filed_at is not None and row.sha256 == sha)


def _drop_stale_status(handoff: str, name: str, sha: str) -> None:
    """Remove ``status/<name>.status`` when it records a final outcome for exactly this content.

    A loop starting later would otherwise take it for an outcome recorded just before a crash and file
    the retried intent again without running it.
    """
    path = os.path.join(handoff, "status", status_name(name))
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read(1 << 20))
    except (OSError, ValueError):
        return
    if isinstance(doc, dict) and doc.get("sha256") == sha:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _retry_one(handoff: str, src: str, store: Any, matcher: PatternMatcher) -> str:
    """Move one failed intent back into the handoff; returns the path it got."""
    filed = os.path.basename(src)
    original = original_name(filed)
    sha, _size = _core.sha256_file(src)
    candidates = [original] if original == filed else [original, filed]
    name = candidates[-1]
    for cand in candidates:
        target = os.path.join(handoff, cand)
        if not os.path.lexists(target) and not _deduped_by(store, target, sha):
            name = cand
            break
    else:
        if _deduped_by(store, os.path.join(handoff, name), sha):
            # The same content already succeeded under this name: the loop would skip it as a duplicate.
            # A fresh conflict-style name has no history, so it is processed.
            name = _fresh_name(original)
    _drop_stale_status(handoff, name, sha)
    moved = _core.move_noclobber(src, handoff, name=name)
    if moved != os.path.join(handoff, name):
        _drop_stale_status(handoff, os.path.basename(moved), sha)
    _core.fsync_dir(handoff)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(handoff, FAILED, error_log_name(filed)))
    if not matcher.is_intent(os.path.basename(moved)):
        click.echo(
            f"conductor-loop: warning: {os.path.basename(moved)} does not match the intent patterns "
            f"({', '.join(matcher.patterns)}); the loop will not take it",
            err=True,
        )
    return moved


def _failed_intents(failed_dir: str) -> list[str]:
    try:
        with os.scandir(failed_dir) as it:
            return sorted(
                e.path
                for e in it
                if not e.name.startswith(".")
                and not e.name.endswith(ERROR_LOG_SUFFIX)
                and e.is_file(follow_symlinks=False)
            )
    except FileNotFoundError:
        return []


# ------------------------------------------------------------------------------ commands


STATUS_HELP = """Show counts, the running loop's queue and workers, recent failures and the last run.

\b
Examples:
  conductor-loop status --handoff /var/lib/conductor/handoff
  conductor-loop status --json --failures 20 | jq .live
  conductor-loop status --watch --interval 500ms
"""

RETRY_HELP = """Move failed intents from failed/ back into the handoff so they are processed again.

NAME is a file in failed/ (with or without the failed/ prefix).  A conflict suffix such as
.20260115T101502.123Z is dropped when the original name is free in the handoff; nothing is ever
overwritten.  Works while a loop is running: it picks the files up.

\b
Examples:
  conductor-loop retry --handoff ./handoff intent-a.json failed/intent-b.20260115T101502.123Z.json
  conductor-loop retry --handoff ./handoff --all-failed
"""

EXPORT_HELP = """Write the state in the Go loop's .conductor-state.json format (stdout by default).

\b
Examples:
  conductor-loop state export --handoff ./handoff -o backup.json
  conductor-loop state export | jq '.states | length'
"""

IMPORT_HELP = """Import a Go .conductor-state.json into the state (rows already present are kept).

Refused while a loop is running on the handoff directory.

\b
Example:
  conductor-loop state import --handoff ./handoff /old/handoff/.conductor-state.json
"""

PRUNE_HELP = """Delete finished state rows filed longer ago than --older-than (files are not touched).

Refused while a loop is running (the loop prunes by itself with --cleanup-after).

\b
Example:
  conductor-loop state prune --handoff ./handoff --older-than 30d
"""

CONFIG_SHOW_HELP = """Print the effective run configuration and where each value came from.

Takes the same options as run; precedence is flag > CONDUCTOR_* env > config file > default.

\b
Examples:
  conductor-loop config show --config /etc/conductor-loop/config.toml
  CONDUCTOR_WORKERS=4 conductor-loop config show --timeout 1m --json
"""

_handoff_option = click.option(
    "--handoff", metavar="DIR", help="Handoff directory (default: as for run: env, config file, ./handoff)."
)
_config_option = click.option("--config", metavar="FILE", help="TOML configuration file (for the handoff default).")


@click.command("status", help=STATUS_HELP)
@_handoff_option
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--failures", "n_failures", default=5, show_default=True, type=click.IntRange(min=0),
              metavar="N", help="How many recent failures to show.")
@click.option("--watch", is_flag=True, help="Redraw the live figures every --interval until q or Ctrl-C "
              "(one line per interval without a terminal).")
@click.option("--interval", default="1s", show_default=True, type=INTERVAL, help="Redraw interval of --watch.")
def status_cmd(handoff: str | None, config: str | None, as_json: bool, n_failures: int, watch: bool,
               interval: float) -> None:
    """``conductor-loop status``."""
    path, patterns = _handoff(handoff, config)
    if watch:
        sys.exit(watch_status(lambda: status_report(path, patterns, n_failures), interval, as_json))
    rep = status_report(path, patterns, n_failures)
    if as_json:
        click.echo(json.dumps(rep, sort_keys=True))
    else:
        click.echo("\n".join(_status_text(rep)))


@click.command("retry", help=RETRY_HELP)
@_handoff_option
@_config_option
@click.option("--all-failed", is_flag=True, help="Retry every intent in failed/.")
@click.argument("names", nargs=-1, metavar="NAME...")
def retry_cmd(handoff: str | None, config: str | None, all_failed: bool, names: tuple[str, ...]) -> None:
    """``conductor-loop retry``."""
    from conductor_loop.state import StateError, StateStore

    if bool(names) == all_failed:
        _fail(EXIT_USAGE, "retry: give NAME... or --all-failed (not both)")
    path, patterns = _handoff(handoff, config)
    failed_dir = os.path.join(path, FAILED)
    sources: list[str] = []
    unknown: list[str] = []
    if all_failed:
        sources = _failed_intents(failed_dir)
    else:
        for raw in names:
            name = raw[len(FAILED) + 1 :] if raw.startswith(FAILED + "/") else raw
            src = os.path.join(failed_dir, name)
            if (
                not name
                or "/" in name
                or name.startswith(".")
                or name.endswith(ERROR_LOG_SUFFIX)
                or not os.path.isfile(src)
                or os.path.islink(src)
            ):
                unknown.append(raw)
            else:
                sources.append(src)
    if not sources and not unknown:
        click.echo(f"nothing to retry: {failed_dir} holds no failed intents")
        sys.exit(EXIT_OK)
    store: Any = None
    with contextlib.suppress(FileNotFoundError, sqlite3.Error, StateError):
        store = StateStore(path, readonly=True)
    matcher = PatternMatcher(patterns)
    errors = 0
    try:
        for src in dict.fromkeys(sources):
            try:
                moved = _retry_one(path, src, store, matcher)
            except OSError as exc:
                errors += 1
                click.echo(f"conductor-loop: cannot retry {os.path.basename(src)}: {exc}", err=True)
                continue
            click.echo(f"retried {os.path.basename(src)} -> {os.path.relpath(moved, path)}")
    finally:
        if store is not None:
            store.close()
    for raw in unknown:
        click.echo(f"conductor-loop: not a failed intent: {raw} (no such file in {failed_dir})", err=True)
    sys.exit(EXIT_FATAL if unknown or errors else EXIT_OK)


@click.group("state")
def state_group() -> None:
    """Export, import or prune the loop's state (SQLite in <handoff>/.conductor/state.db).

    \b
    Examples:
      conductor-loop state export -o state.json
      conductor-loop state import old/.conductor-state.json
      conductor-loop state prune --older-than 30d
    """


@state_group.command("export", help=EXPORT_HELP)
@_handoff_option
@_config_option
@click.option("-o", "--output", metavar="FILE", help="Write here (atomically) instead of stdout.")
def state_export(handoff: str | None, config: str | None, output: str | None) -> None:
    """``conductor-loop state export``."""
    from conductor_loop.state import StateError, StateStore, format_rfc3339

    path, _ = _handoff(handoff, config)
    try:
        with StateStore(path, readonly=True) as store:
            doc = store.export_go()
    except FileNotFoundError:
        click.echo(f"conductor-loop: no state yet in {path}; exporting an empty state", err=True)
        doc = {"version": "1.0", "saved_at": format_rfc3339(time.time()), "states": {}}
    except (sqlite3.Error, StateError) as exc:
        _fail(EXIT_FATAL, f"cannot read the state of {path}: {exc}")
        return
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        _core.write_atomic(os.path.abspath(output), text.encode("utf-8"))
    except OSError as exc:
        _fail(EXIT_FATAL, f"cannot write {output}: {exc}")
    click.echo(f"exported {len(doc['states'])} entries to {output}", err=True)


@state_group.command("import", help=IMPORT_HELP)
@_handoff_option
@_config_option
@click.argument("file", metavar="FILE")
def state_import(handoff: str | None, config: str | None, file: str) -> None:
    """``conductor-loop state import``."""
    from conductor_loop.state import StateError, StateStore

    path, _ = _handoff(handoff, config)
    if not os.path.isfile(file):
        _fail(EXIT_FATAL, f"{file}: no such file")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        _fail(EXIT_FATAL, f"cannot create {path}: {exc.strerror or exc}")
    with _exclusive(path, "import state"):
        try:
            with StateStore(path) as store:
                n = store.import_go(os.path.abspath(file))
        except ValueError as exc:
            _fail(EXIT_FATAL, str(exc))
            return
        except (OSError, sqlite3.Error, StateError) as exc:
            _fail(EXIT_FATAL, f"cannot write the state of {path}: {exc}")
            return
    click.echo(f"imported {n} entries into {os.path.join(path, STATE_DIR)}")


@state_group.command("prune", help=PRUNE_HELP)
@_handoff_option
@_config_option
@click.option("--older-than", default="7d", show_default=True, metavar="DURATION",
              help="Age (since filed) of the rows to delete: 12h, 7d, 30d…")
def state_prune(handoff: str | None, config: str | None, older_than: str) -> None:
    """``conductor-loop state prune``."""
    from conductor_loop.config import parse_duration
    from conductor_loop.state import DB_NAME, StateError, StateStore

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        _fail(EXIT_USAGE, f"--older-than: {exc}")
        return
    path, _ = _handoff(handoff, config)
    if not os.path.exists(os.path.join(path, STATE_DIR, DB_NAME)):
        click.echo(f"no state yet in {path}; nothing to prune")
        return
    with _exclusive(path, "prune state"):
        try:
            with StateStore(path) as store:
                n = store.prune(age)
        except (OSError, sqlite3.Error, StateError) as exc:
            _fail(EXIT_FATAL, f"cannot prune the state of {path}: {exc}")
            return
    click.echo(f"pruned {n} entries older than {older_than}")


def _config_group() -> click.Group:
    """``config show``, built at registration time: it reuses ``run``'s options from the cli module."""
    from conductor_loop.cli import _resolve, _run_options

    @click.group("config")
    def config_group() -> None:
        """Inspect the configuration.

        \b
        Example:
          conductor-loop config show --config /etc/conductor-loop/config.toml
        """

    @config_group.command("show", help=CONFIG_SHOW_HELP)
    @_run_options
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON object {key: {value, source}}.")
    def config_show(as_json: bool, **params: Any) -> None:
        from conductor_loop.config import explain
        from conductor_loop.watch import choose_backend

        cfg, sources = _resolve(params)
        rows = explain(cfg, sources)
        if cfg.watch == "auto":  # say what auto picks for this handoff
            kind, why = choose_backend(cfg.handoff, cfg.watch)
            rows = [(k, f"auto: {kind} ({why})" if k == "watch" else v, s) for k, v, s in rows]
        if as_json:
            click.echo(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, sort_keys=True))
            return
        wk = max(len(r[0]) for r in rows)
        wv = max(len(r[1]) for r in rows)
        click.echo(f"{'key':<{wk}}  {'value':<{wv}}  source")
        for key, value, source in rows:
            click.echo(f"{key:<{wk}}  {value:<{wv}}  {source}")

    return config_group


def register(group: click.Group) -> None:
    """Add ``status``, ``retry``, ``state`` and ``config`` to the top-level ``conductor-loop`` group."""
    group.add_command(status_cmd)
    group.add_command(retry_cmd)
    group.add_command(state_group)
    group.add_command(_config_group())
