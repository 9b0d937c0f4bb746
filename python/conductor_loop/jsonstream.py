"""Streaming JSON: the members of one object of a document, read a chunk at a time (memory does not grow
with the file).

:func:`object_members` yields ``(key, value)`` of the object under a top-level key (the Go state file's
``states``, README "The state") while checking that the whole document is well-formed JSON; each member's
value is decoded with :meth:`json.JSONDecoder.raw_decode` from a buffer of about :data:`CHUNK` bytes.
Members are yielded before the end of the document is reached, so a caller that must not act on a
malformed file collects its effects in one transaction and commits only when the iteration ends.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

CHUNK = 1 << 20
"""Bytes read at a time."""

MAX_VALUE = 16 << 20
"""A value not decoded with this many characters buffered is malformed (bounds the buffer on bad input)."""

_WS = re.compile(r"[ \t\n\r]*")
_COLON = re.compile(r"[ \t\n\r]*:[ \t\n\r]*")
_SEP = re.compile(r"[ \t\n\r]*([,}])")
_DECODER = json.JSONDecoder()
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]  # public in json.decoder, untyped


class _Short(Exception):
    """The buffer ends inside what is being read: read on."""


class InvalidJson(ValueError):
    """The document is not well-formed JSON (message: what, and the character offset)."""


class NoSuchObject(ValueError):
    """The document is JSON but its top level is not an object holding an object under the key."""


class _Reader:
    def __init__(self, fh: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self.fh = fh
        self.progress = progress
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.base = 0  # characters dropped from the front of buf
        self.eof = False
        self.bytes_read = 0

    def fail(self, what: str, pos: int | None = None) -> InvalidJson:
        return InvalidJson(f"{what}: char {self.base + (self.pos if pos is None else pos)}")

    def fill(self) -> None:
        data = self.fh.read(CHUNK)
        self.bytes_read += len(data)
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise InvalidJson(f"not UTF-8 near byte {self.bytes_read - len(data) + exc.start}") from exc
        self.eof = not data
        if self.pos:
            self.base += self.pos
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += text
        if self.progress is not None:
            self.progress(self.bytes_read)

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the file), not consumed."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]  # always matches
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if self.eof:
                return ""
            self.fill()

    def expect(self, ch: str, what: str) -> None:
        if self.peek() != ch:
            raise self.fail(f"Expecting {what}")
        self.pos += 1

    def value(self) -> Any:
        """Decode the value at the current position (reading on until it is whole)."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:  # at the buffer's end a number may go on
                    self.pos = end
                    return value
            except json.JSONDecodeError as exc:
                if self.eof or len(self.buf) - self.pos > MAX_VALUE:
                    raise self.fail(exc.msg, exc.pos) from None
            except RecursionError:
                raise self.fail("nested too deeply") from None
            self.fill()

    def entries(self) -> Iterator[tuple[str, Any]]:
        """After a consumed ``{``: each member, key and value decoded (the fast path of the inner object)."""
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            key, value, sep = self.member()
            yield key, value
            if sep == "}":
                return

    def member(self) -> tuple[str, Any, str]:
        """``key: value`` and the ``,`` or ``}`` after it, read on until they are whole."""
        while True:
            try:
                return self._member_at()
            except json.JSONDecodeError as exc:
                if self.eof or len(self.buf) - self.pos > MAX_VALUE:
                    raise self.fail(exc.msg, exc.pos) from None
            except _Short:
                if self.eof:
                    raise self.fail("Unexpected end of file", len(self.buf)) from None
            except RecursionError:
                raise self.fail("nested too deeply") from None
            self.fill()

    def _member_at(self) -> tuple[str, Any, str]:
        buf = self.buf
        pos = _WS.match(buf, self.pos).end()  # type: ignore[union-attr]  # always matches
        if pos >= len(buf):
            raise _Short
        if buf[pos] != '"':
            raise self.fail("Expecting property name enclosed in double quotes", pos)
        key, pos = _scanstring(buf, pos + 1, True)
        colon = _COLON.match(buf, pos)
        if colon is None:
            if _WS.match(buf, pos).end() >= len(buf):  # type: ignore[union-attr]
                raise _Short
            raise self.fail("Expecting ':' delimiter", pos)
        value, pos = _DECODER.raw_decode(buf, colon.end())
        sep = _SEP.match(buf, pos)
        if sep is None:
            if _WS.match(buf, pos).end() >= len(buf):  # type: ignore[union-attr]
                raise _Short
            raise self.fail("Expecting ',' delimiter", pos)
        if sep.end() >= len(buf) and not self.eof:
            raise _Short  # a number may go on in the next chunk
        self.pos = sep.end()
        return key, value, sep.group(1)

    def members(self) -> Iterator[str]:
        """After a consumed ``{``: each key, positioned at its value (which the caller must consume)."""
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self.fail("Expecting property name enclosed in double quotes")
            key = self.value()
            self.expect(":", "':' delimiter")
            yield key
            c = self.peek()
            self.pos += 1
            if c == "}":
                return
            if c != ",":
                raise self.fail("Expecting ',' delimiter", self.pos - 1)


def object_members(
    fh: IO[bytes], field: str, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[str, Any]]:
    """``(key, value)`` of the object under the top-level ``field`` of the JSON document in ``fh``.

    ``progress(bytes_read)`` is called after each chunk. Raises :class:`InvalidJson` (at the point of the
    error, possibly after members were yielded) or :class:`NoSuchObject` (at the end of the document).
    """
    r = _Reader(fh, progress)
    top = r.peek()
    if top != "{":
        if top in ("[", '"', "t", "f", "n", "-") or top.isdigit():
            raise NoSuchObject("the top level is not a JSON object")
        raise r.fail("Expecting value")
    r.pos += 1
    found = False
    for key in r.members():
        if key == field and r.peek() == "{":
            r.pos += 1
            found = True
            yield from r.entries()
        else:
            r.value()
    if r.peek() != "":
        raise r.fail("Extra data")
    if not found:
        raise NoSuchObject(f"no {field!r} object")
