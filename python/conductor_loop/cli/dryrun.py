"""``run --dry-run``: the decision a real run would make for each intent in the handoff, touching nothing.

In the order a real run decides: validation first (``would fail`` with the problems), then the dedupe
rule of the layout (:func:`conductor_loop.layout.dedupe_basis`) against the state, read read-only
(``would skip`` naming the earlier run), else ``would run`` with porch's exact argv.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from conductor_loop import _core
from conductor_loop.config import RunConfig
from conductor_loop.layout import Layout, dedupe_basis, duplicate_message
from conductor_loop.validate import validate_path

if TYPE_CHECKING:
    from conductor_loop.state import StateStore

__all__ = ["dry_run"]

Echo = Callable[[str], None]


def _open_state(handoff: str, echo: Echo) -> StateStore | None:
    from conductor_loop.state import StateError, StateStore

    try:
        return StateStore(handoff, readonly=True)
    except FileNotFoundError:
        return None  # no run yet: nothing can be a duplicate
    except (sqlite3.Error, StateError) as exc:
        echo(f"note: state unreadable ({exc}); duplicates are not detected")
        return None


def _duplicate(path: str, cfg: RunConfig, store: StateStore | None) -> str | None:
    """The skip message when a real run would skip ``path`` as a duplicate (the layout's rule)."""
    basis = dedupe_basis(store.get(path)) if store is not None else None
    if basis is None:
        return None
    sha, _size = _core.sha256_file(path, cfg.max_file_size)
    return duplicate_message(sha, basis[1]) if sha == basis[0] else None


def _decision(path: str, cfg: RunConfig, store: StateStore | None, argv: list[str]) -> str:
    name = os.path.basename(path)
    problems = validate_path(path, cfg.max_file_size, cfg.intent_schema)
    if problems:
        return f"would fail  {name}: {'; '.join(problems)}"
    try:
        skip = _duplicate(path, cfg, store)
    except OSError as exc:
        return f"would fail  {name}: cannot read: {exc.strerror or exc}"
    if skip is not None:
        return f"would skip  {name}: duplicate of an earlier run: {skip}"
    return f"would run   {name}: {' '.join([argv[0], '-intent', path, *argv[1:]])}"


def dry_run(cfg: RunConfig, echo: Echo) -> int:
    """Print one ``would run|skip|fail`` line per intent of ``cfg.handoff`` and a closing line; returns 0."""
    layout = Layout(cfg.handoff, tuple(cfg.patterns))
    try:
        paths = sorted(layout.scan())
    except FileNotFoundError:
        paths = []
    argv = [cfg.porch, "-out", os.path.abspath(cfg.out)] + (["-structured"] if cfg.mode == "structured" else [])
    store = _open_state(layout.root, echo) if paths else None
    try:
        for path in paths:
            echo(_decision(path, cfg, store, argv))
    finally:
        if store is not None:
            store.close()
    echo(f"dry run: {len(paths)} intent(s) in {layout.root}; nothing was changed")
    return 0
