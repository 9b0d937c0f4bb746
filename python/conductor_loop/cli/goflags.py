"""The Go loop's command line, translated to ours (README "Migrating from the Go loop").

A service file written for the Go ``conductor-loop`` must start this loop unchanged. Go's ``flag`` package
takes ``-name value``, ``-name=value`` and the same with two dashes; boolean flags take ``-name`` or
``-name=true|false`` only. This module rewrites such an argv into click's options before click parses it,
so that click never sees a single-dash word it would split into letters (``-period`` → ``-p``):

* the flags both loops share (``-handoff``, ``-porch``, ``-mode``, ``-out``, ``-once``, ``-debounce``)
  become their ``--`` spelling;
* ``-period D`` becomes ``--watch poll --poll-interval D`` (``0``: ``--watch inotify``), with the Go loop's
  range check; ``-schema PATH`` becomes ``--intent-schema PATH``; ``-handoff-dir DIR`` is ``--handoff``;
* ``-porch-url`` is accepted and dropped with one warning (the Go loop logged it and never used it);
* the flags of the Go loop's processor mode are refused with one line (:class:`GoFlagError`);
* any other single-dash word is an error naming the word as typed.

Every translated flag also adds a hidden ``--go-flag FIELD=SPELLING`` pair, so that ``config show`` can say
which Go flag set which value (:func:`label_sources`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from conductor_loop.units import parse_bool, parse_duration

#: The hidden option that carries "this field was set by that Go flag" through click.
GO_FLAG_OPTION = "--go-flag"

#: Go flag → our option, for flags that mean the same thing in both loops.
_SAME = {
    "handoff": "--handoff",
    "handoff-dir": "--handoff",
    "porch": "--porch",
    "mode": "--mode",
    "out": "--out",
    "debounce": "--debounce",
    "schema": "--intent-schema",
}
#: Go boolean flags that are ours too.
_BOOLS = {"once": "--once"}
#: Go flags of the processor mode (submits to Kubernetes instead of running porch).
_PROCESSOR = frozenset({"use-processor", "error-dir", "porch-mode", "batch-size", "batch-interval"})
_PROCESSOR_BOOLS = frozenset({"use-processor"})
_IGNORED = frozenset({"porch-url"})
_HELP = frozenset({"h", "help"})
#: Go flag names that are not also our ``--`` options (``--period`` is Go's, ``--handoff`` is ours).
_GO_ONLY = frozenset({"period", "schema", "handoff-dir", "help", *_PROCESSOR, *_IGNORED})
#: Go flags that take a value (``-name value`` or ``-name=value``).
_TAKES_VALUE = frozenset({*_SAME, "period", *_IGNORED, *(_PROCESSOR - _PROCESSOR_BOOLS)})
#: The Go loop's accepted range for ``-period`` (other than 0).
PERIOD_MIN, PERIOD_MAX = 0.1, 3600.0


class GoFlagError(ValueError):
    """A Go flag that this loop refuses or cannot read (exit code 2); the message is one line."""


@dataclass(slots=True)
class Translated:
    """The rewritten argv and the warnings to print once."""

    argv: list[str]
    warnings: list[str] = field(default_factory=list)


def translate(argv: Sequence[str], value_options: Collection[str]) -> Translated:
    """Rewrite Go-style flags in ``argv`` (the arguments after the sub-command).

    ``value_options`` are our own ``--long`` options that take a value: the word after one of them is its
    value and is never read as a flag. Stops at ``--``. Raises :class:`GoFlagError`.
    """
    out = Translated([])
    words = list(argv)
    i = 0
    while i < len(words):
        arg = words[i]
        if arg == "--":
            out.argv.extend(words[i:])
            break
        name, eq, inline = arg.lstrip("-").partition("=")
        dashes = len(arg) - len(arg.lstrip("-"))
        if dashes == 2 and arg[2:].split("=", 1)[0] not in _GO_ONLY:
            out.argv.append(arg)  # one of ours (click checks it)
            if not eq and arg in value_options and i + 1 < len(words):
                out.argv.append(words[i + 1])
                i += 1
            i += 1
            continue
        if dashes not in (1, 2) or not name:
            out.argv.append(arg)  # a positional word, "-" or "---x": click decides
            i += 1
            continue
        value: str | None = inline if eq else None
        if name in _TAKES_VALUE and value is None:
            if i + 1 >= len(words):
                raise GoFlagError(f"flag needs an argument: {arg}")
            value = words[i + 1]
            i += 1
        _one(out, arg, name, value)
        i += 1
    return out


def _one(out: Translated, typed: str, name: str, value: str | None) -> None:
    """Translate one Go flag (``typed`` as the user wrote it) and append it to ``out``."""
    spelling = typed.split("=", 1)[0]
    if name in _HELP and value is None:
        out.argv.append("--help")
    elif name in _SAME:
        assert value is not None
        out.argv += [_SAME[name], value, GO_FLAG_OPTION, f"{_SAME[name][2:]}={spelling}"]
    elif name in _BOOLS:
        if _go_bool(spelling, value):
            out.argv += [_BOOLS[name], GO_FLAG_OPTION, f"{_BOOLS[name][2:]}={spelling}"]
    elif name == "period":
        assert value is not None
        out.argv += _period(spelling, value)
    elif name in _IGNORED:
        out.warnings.append(f"{spelling} has no effect here (the Go loop logged it and never used it); ignored")
    elif name in _PROCESSOR:
        if name in _PROCESSOR_BOOLS and not _go_bool(spelling, value):
            return  # -use-processor=false asks for what this loop does anyway
        raise GoFlagError(
            f"{spelling}: the Go loop's processor mode (submitting intents to Kubernetes) is not supported; "
            "run porch with --porch PATH (see 'Migrating from the Go loop' in docs/operations.md)"
        )
    else:
        raise GoFlagError(f"unknown option {spelling}")


def _go_bool(spelling: str, value: str | None) -> bool:
    if value is None:
        return True
    try:
        return parse_bool(value)
    except ValueError:
        raise GoFlagError(f"invalid boolean value {value!r} for flag {spelling}") from None


def _period(spelling: str, value: str) -> list[str]:
    """``-period D``: 0 is inotify; 100ms..1h polls every D (the Go loop's range)."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise GoFlagError(f"invalid value {value!r} for flag {spelling}: {exc}") from None
    tag = [GO_FLAG_OPTION, f"watch={spelling}"]
    if seconds == 0:
        return ["--watch", "inotify", *tag]
    if not PERIOD_MIN <= seconds <= PERIOD_MAX:
        raise GoFlagError(f"invalid value {value!r} for flag {spelling}: must be 0 or between 100ms and 1h")
    return ["--watch", "poll", "--poll-interval", value, *tag, GO_FLAG_OPTION, f"poll-interval={spelling}"]


def label_sources(sources: dict[str, str], go_flags: Sequence[str]) -> None:
    """Relabel ``"flag"`` sources that a Go flag set, e.g. ``flag -period`` (for ``config show``)."""
    for pair in go_flags:
        option, _, spelling = pair.partition("=")
        key = option.replace("-", "_")
        if sources.get(key) == "flag":
            sources[key] = f"flag {spelling} (Go)"
