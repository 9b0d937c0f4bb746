"""``conductor-loop state export|import|prune``: the Go state format, and pruning old rows.

``export`` reads the state read-only (fine while a loop runs); ``import`` and ``prune`` refuse while a
loop holds the lock, and hold it themselves while they write.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import click

from conductor_loop import _core, lock
from conductor_loop.cli.common import EXIT_FATAL, EXIT_USAGE, config_option, fail, handoff_of, handoff_option
from conductor_loop.layout import Layout

if TYPE_CHECKING:
    from conductor_loop.gostate import GoStateText

EXPORT_HELP = """Write the state in the Go loop's .conductor-state.json format (stdout by default).

Streamed from the table (memory does not grow with the state). With -o FILE it is written atomically:
nothing shows under FILE unless all of it was written, and a progress bar is shown when stderr is a
terminal. On stdout a read error half-way cuts the document short (not valid JSON) and exits 1.

\b
Examples:
  conductor-loop state export --handoff ./handoff -o backup.json
  conductor-loop state export | jq '.states | length'
"""

IMPORT_HELP = """Import a Go .conductor-state.json into the state (rows already present are kept).

The file is streamed (memory does not grow with its size) into one transaction: a malformed or truncated
file imports nothing. A progress bar is shown when stderr is a terminal. Refused while a loop is running
on the handoff directory.

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



@contextlib.contextmanager
def _exclusive(handoff: str, what: str) -> Iterator[None]:
    """Hold the loop's lock while changing the state; exit 1 when a loop runs."""
    layout = Layout(handoff)
    os.makedirs(layout.state_dir, mode=0o700, exist_ok=True)
    try:
        fd = lock.acquire(layout.lock)
    except lock.LockHeld as exc:
        fail(EXIT_FATAL, f"cannot {what} while a loop is running: {exc}; stop it first")
    try:
        yield
    finally:
        lock.release(fd)


@contextlib.contextmanager
def _progress(what: str, total: Callable[[], int], *, in_bytes: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr when it is a terminal, else none: ``what``, done of ``total()`` (asked only
    for a bar), as bytes or as entries."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    done = DownloadColumn() if in_bytes else MofNCompleteColumn()
    with Progress(TextColumn(what), BarColumn(), done, TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task(what, total=total())
        yield lambda n: bar.update(task, completed=n)


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
@handoff_option
@config_option
@click.option("-o", "--output", metavar="FILE", help="Write here (atomically) instead of stdout.")
def state_export(handoff: str | None, config: str | None, output: str | None) -> None:
    """``conductor-loop state export``."""
    from conductor_loop.gostate import GoStateText
    from conductor_loop.state import StateError, StateStore

    path, _ = handoff_of(handoff, config)
    try:
        with StateStore(path, readonly=True) as store:
            entries = _export(store.export_go(), output, lambda: _finished(store.counts()))
    except FileNotFoundError:
        click.echo(f"conductor-loop: no state yet in {path}; exporting an empty state", err=True)
        entries = _export(GoStateText((), time.time()), output, lambda: 0)
    except (sqlite3.Error, StateError) as exc:
        fail(EXIT_FATAL, f"cannot read the state of {path}: {exc}")
        return
    if output is not None:
        click.echo(f"exported {entries} entries to {output}", err=True)


def _finished(counts: dict[str, int]) -> int:
    """The rows an export writes: every one but those still being worked on."""
    return sum(counts.values()) - counts["claimed"]


def _export(text: GoStateText, output: str | None, total: Callable[[], int]) -> int:
    """Write ``text`` piece by piece to stdout, or to ``output`` atomically (nothing shows there unless all
    of it was written) with a progress bar of ``total()`` entries on a terminal; the number of entries. A
    write error exits 1 saying which file."""
    if output is None:
        for piece in text:
            click.echo(piece, nl=False)
        return text.entries
    target = os.path.abspath(output)
    try:
        _core.remove_dead_temps(target)  # what an export killed half-way left beside it
        with _core.AtomicFile(target) as f, _progress("exporting", total, in_bytes=False) as progress:
            for piece in text:
                f.write(piece.encode("ascii"))  # the Go layout's JSON escapes every non-ASCII character
                if progress is not None:
                    progress(text.entries)
            f.commit()
    except OSError as exc:
        fail(EXIT_FATAL, f"cannot write {output}: {exc}")
    return text.entries


@state_group.command("import", help=IMPORT_HELP)
@handoff_option
@config_option
@click.argument("file", metavar="FILE")
def state_import(handoff: str | None, config: str | None, file: str) -> None:
    """``conductor-loop state import``."""
    from conductor_loop.state import StateError, StateStore

    path, _ = handoff_of(handoff, config)
    if not os.path.isfile(file):
        fail(EXIT_FATAL, f"{file}: no such file")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        fail(EXIT_FATAL, f"cannot create {path}: {exc.strerror or exc}")
    with _exclusive(path, "import state"):
        try:
            bar = _progress("importing", lambda: os.path.getsize(file), in_bytes=True)
            with StateStore(path) as store, bar as progress:
                n = store.import_go(os.path.abspath(file), progress)
        except ValueError as exc:
            fail(EXIT_FATAL, str(exc))
            return
        except (OSError, sqlite3.Error, StateError) as exc:
            fail(EXIT_FATAL, f"cannot write the state of {path}: {exc}")
            return
    click.echo(f"imported {n} entries into {Layout(path).state_dir}")


@state_group.command("prune", help=PRUNE_HELP)
@handoff_option
@config_option
@click.option("--older-than", default="7d", show_default=True, metavar="DURATION",
              help="Age (since filed) of the rows to delete: 12h, 7d, 30d…")
def state_prune(handoff: str | None, config: str | None, older_than: str) -> None:
    """``conductor-loop state prune``."""
    from conductor_loop.config import parse_duration
    from conductor_loop.state import StateError, StateStore

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        fail(EXIT_USAGE, f"--older-than: {exc}")
        return
    path, _ = handoff_of(handoff, config)
    if not os.path.exists(Layout(path).db):
        click.echo(f"no state yet in {path}; nothing to prune")
        return
    with _exclusive(path, "prune state"):
        try:
            with StateStore(path) as store:
                n = store.prune(age)
        except (OSError, sqlite3.Error, StateError) as exc:
            fail(EXIT_FATAL, f"cannot prune the state of {path}: {exc}")
            return
    click.echo(f"pruned {n} entries older than {older_than}")


