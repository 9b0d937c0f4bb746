"""``conductor-loop retry``: failed intents back into the handoff, never overwriting, never skipped as duplicates."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import sys
from typing import Any

import click

from conductor_loop import _core
from conductor_loop.cli.common import EXIT_FATAL, EXIT_OK, EXIT_USAGE, config_option, fail, handoff_of, handoff_option
from conductor_loop.clock import compact_stamp
from conductor_loop.layout import ERROR_LOG_SUFFIX, FAILED, Layout, deduped, read_status_file

#: The conflict suffix ``move_noclobber`` adds before the extension: ``.YYYYmmddTHHMMSS.mmmZ`` and an
#: optional counter (``intent-a.20260115T101502.123Z.2.json``).
_CONFLICT = re.compile(r"^(?P<stem>.+?)\.\d{8}T\d{6}\.\d{3}Z(?:\.\d+)?(?P<ext>\.[^.]{1,31})?$")

RETRY_HELP = """Move failed intents from failed/ back into the handoff so they are processed again.

NAME is a file in failed/ (with or without the failed/ prefix).  A conflict suffix such as
.20260115T101502.123Z is dropped when the original name is free in the handoff; nothing is ever
overwritten.  Works while a loop is running: it picks the files up.

\b
Examples:
  conductor-loop retry --handoff ./handoff intent-a.json failed/intent-b.20260115T101502.123Z.json
  conductor-loop retry --handoff ./handoff --all-failed
"""

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
    stamp = compact_stamp()
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 31:
        return f"{name}.{stamp}"
    return f"{stem}.{stamp}.{ext}"


def _deduped_by(store: Any, path: str, sha: str) -> bool:
    """True when the loop would skip content ``sha`` at ``path`` as a duplicate (the layout's rule)."""
    return store is not None and deduped(store.get(path), sha)


def _drop_stale_status(layout: Layout, name: str, sha: str) -> None:
    """Remove ``status/<name>.status`` when it records an outcome for exactly this content.

    A loop starting later would otherwise take it for an outcome recorded just before a crash and file
    the retried intent again without running it.
    """
    path = layout.status_path(name)
    doc = read_status_file(path)
    if doc is not None and doc.get("sha256") == sha:
        with contextlib.suppress(FileNotFoundError):
            layout.anchor.unlink(path)


def _retry_one(layout: Layout, src: str, store: Any) -> str:
    """Move one failed intent back into the handoff; returns the path it got."""
    handoff = layout.root
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
    _drop_stale_status(layout, name, sha)
    moved = layout.anchor.move_noclobber(src, handoff, name=name)
    if moved != os.path.join(handoff, name):
        _drop_stale_status(layout, os.path.basename(moved), sha)
    layout.anchor.fsync_dir(handoff)
    with contextlib.suppress(FileNotFoundError):
        layout.anchor.unlink(layout.error_log_path(filed))
    if not layout.is_intent(os.path.basename(moved)):
        click.echo(
            f"conductor-loop: warning: {os.path.basename(moved)} does not match the intent patterns "
            f"({', '.join(layout.rule.patterns)}); the loop will not take it",
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


def _sources(failed_dir: str, names: tuple[str, ...], all_failed: bool) -> tuple[list[str], list[str]]:
    """(failed intents to retry, NAMEs that are not failed intents)."""
    if all_failed:
        return _failed_intents(failed_dir), []
    sources: list[str] = []
    unknown: list[str] = []
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
    return sources, unknown


def _retry_all(layout: Layout, sources: list[str]) -> int:
    """Retry each source (once); returns how many could not be moved."""
    from conductor_loop.state import StateError, StateStore

    store: Any = None
    with contextlib.suppress(FileNotFoundError, sqlite3.Error, StateError):
        store = StateStore(layout.root, readonly=True)
    errors = 0
    try:
        for src in dict.fromkeys(sources):
            try:
                moved = _retry_one(layout, src, store)
            except OSError as exc:
                errors += 1
                click.echo(f"conductor-loop: cannot retry {os.path.basename(src)}: {exc}", err=True)
                continue
            click.echo(f"retried {os.path.basename(src)} -> {os.path.relpath(moved, layout.root)}")
    finally:
        if store is not None:
            store.close()
    return errors


@click.command("retry", help=RETRY_HELP)
@handoff_option
@config_option
@click.option("--all-failed", is_flag=True, help="Retry every intent in failed/.")
@click.argument("names", nargs=-1, metavar="NAME...")
def retry_cmd(handoff: str | None, config: str | None, all_failed: bool, names: tuple[str, ...]) -> None:
    """``conductor-loop retry``."""
    if bool(names) == all_failed:
        fail(EXIT_USAGE, "retry: give NAME... or --all-failed (not both)")
    path, patterns = handoff_of(handoff, config)
    failed_dir = os.path.join(path, FAILED)
    sources, unknown = _sources(failed_dir, names, all_failed)
    if not sources and not unknown:
        click.echo(f"nothing to retry: {failed_dir} holds no failed intents")
        sys.exit(EXIT_OK)
    errors = _retry_all(Layout(path, patterns), sources)
    for raw in unknown:
        click.echo(f"conductor-loop: not a failed intent: {raw} (no such file in {failed_dir})", err=True)
    sys.exit(EXIT_FATAL if unknown or errors else EXIT_OK)


