"""``conductor-loop status``: counts, the running loop's live figures, recent failures, the last run.

Read-only: opens the state read-only and probes the lock for an instant (never keeps it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from conductor_loop import lock
from conductor_loop.cli.common import config_option, handoff_of, handoff_option
from conductor_loop.clock import rfc3339
from conductor_loop.layout import ERROR_LOG_SUFFIX, Layout
from conductor_loop.live_status import INTERVAL, watch_status

STATUS_HELP = """Show counts, the running loop's queue and workers, recent failures and the last run.

\b
Examples:
  conductor-loop status --handoff /var/lib/conductor/handoff
  conductor-loop status --json --failures 20 | jq .live
  conductor-loop status --watch --interval 500ms
"""

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
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return None
    return rfc3339(float(ts), digits=6)


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


def status_report(handoff: str, patterns: tuple[str, ...] = ("intent-*.json",), failures: int = 5) -> dict[str, Any]:
    """Everything ``conductor-loop status`` shows, as one JSON-serialisable dict.

    Keys: ``handoff``, ``files`` (``handoff``/``processed``/``failed`` counts), ``running``, ``pid``,
    ``live`` (the running loop's published figures plus ``age_seconds``, or ``None``), ``state``
    (per-status row counts, or ``None``), ``state_note`` (why there is no state, or ``None``),
    ``failures`` (newest first) and ``last_run`` (or ``None``).
    """
    from conductor_loop.state import StateError, StateStore

    layout = Layout(handoff, patterns)
    report: dict[str, Any] = {
        "handoff": handoff,
        "files": {
            "handoff": _count_files(handoff, layout.is_intent),
            "processed": _count_files(layout.processed, lambda _n: True),
            "failed": _count_files(layout.failed, lambda _n: True),
        },
        "running": False,
        "pid": None,
        "live": None,
        "state": None,
        "state_note": None,
        "failures": [],
        "last_run": None,
    }
    probe = lock.probe(layout.lock)
    report["running"], report["pid"] = probe.running, probe.pid
    try:
        store = StateStore(handoff, readonly=True)
    except FileNotFoundError:
        report["state_note"] = "no state yet"
        return report
    except (sqlite3.Error, StateError) as exc:
        report["state_note"] = f"state unreadable: {exc}"
        return report
    try:
        _from_state(report, store, probe.running, failures)
    except sqlite3.Error as exc:
        report["state_note"] = f"state unreadable: {exc}"
    finally:
        store.close()
    return report


def _from_state(report: dict[str, Any], store: Any, running: bool, failures: int) -> None:
    """The state's part of the report: counts, recent failures, live figures, the last run."""
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
    if running and isinstance(live, dict):
        updated = live.get("updated_at")
        live = dict(live)
        live["age_seconds"] = round(time.time() - float(updated), 3) if isinstance(updated, (int, float)) else None
        report["live"] = live
        if report["pid"] is None and isinstance(live.get("pid"), int):
            report["pid"] = live["pid"]
    last = store.get_meta("last_run")
    if isinstance(last, dict):
        last = dict(last)
        last["finished_at"] = _rfc3339(last.get("finished_at"))
        report["last_run"] = last


def _loop_lines(rep: dict[str, Any]) -> list[str]:
    if not rep["running"]:
        return ["loop      not running"]
    pid = rep["pid"] if rep["pid"] is not None else "unknown"
    live = rep["live"]
    if live is None:
        return [f"loop      running (pid {pid}); no live figures published yet"]
    age = live.get("age_seconds")
    started = live.get("started_at")
    up = f", up {_ago(time.time() - float(started))}" if isinstance(started, (int, float)) else ""
    return [
        f"loop      running (pid {pid}); live figures {_ago(age or 0.0)} old",
        f"          queue {live.get('queue', '?')}, in flight {live.get('inflight', '?')}, "
        f"workers {live.get('workers', '?')} (busy {live.get('busy', '?')}){up}",
    ]


def _status_text(rep: dict[str, Any]) -> list[str]:
    lines = [f"handoff   {rep['handoff']}", *_loop_lines(rep)]
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


@click.command("status", help=STATUS_HELP)
@handoff_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--failures", "n_failures", default=5, show_default=True, type=click.IntRange(min=0),
              metavar="N", help="How many recent failures to show.")
@click.option("--watch", is_flag=True, help="Redraw the live figures every --interval until q or Ctrl-C "
              "(one line per interval without a terminal).")
@click.option("--interval", default="1s", show_default=True, type=INTERVAL, help="Redraw interval of --watch.")
def status_cmd(handoff: str | None, config: str | None, as_json: bool, n_failures: int, watch: bool,
               interval: float) -> None:
    """``conductor-loop status``."""
    path, patterns = handoff_of(handoff, config)
    if watch:
        sys.exit(watch_status(lambda: status_report(path, patterns, n_failures), interval, as_json))
    rep = status_report(path, patterns, n_failures)
    if as_json:
        click.echo(json.dumps(rep, sort_keys=True))
    else:
        click.echo("\n".join(_status_text(rep)))


