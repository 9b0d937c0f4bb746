"""``--intent-schema PATH``: a JSON Schema file of the operator's own (draft-07 or 2020-12; also
draft-04, draft-06 and 2019-09), applied with the ``jsonschema`` library.

``$schema`` picks the draft; without it the schema is read as 2020-12. The file is read, parsed and
checked against its draft's meta-schema once, when the configuration is loaded: a file that cannot be
used is a :class:`SchemaLoadError` naming the file and the problem (exit 2). Formats are asserted
(``date-time`` as RFC 3339). Worker processes receive the loaded text with the settings and build
their validator from it, without reading or checking the file again. Only the loop's safety rules apply besides
(README, "Migrating from the Go loop"); the :class:`Intent` fields are read from whatever the schema
accepted.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from typing import Any, cast

import jsonschema
from jsonschema import validators

from conductor_loop.intent import Intent, describe
from conductor_loop.intent_schema.base import Rejected, SchemaLoadError, json_path

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if _RFC3339.fullmatch(value) is None:
        return False
    datetime.fromisoformat(value[:19])  # raises ValueError for a day or hour that does not exist
    return True


def _load_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise SchemaLoadError(f"intent schema {path}: not found") from None
    except IsADirectoryError:
        raise SchemaLoadError(f"intent schema {path}: is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise SchemaLoadError(f"intent schema {path}: not UTF-8 ({exc.reason} at offset {exc.start})") from None
    except OSError as exc:
        raise SchemaLoadError(f"intent schema {path}: cannot read: {exc.strerror or exc}") from None


def _compile(path: str, text: str, *, check: bool = True) -> Any:
    """The validator for the schema ``text`` (from ``path``); :class:`SchemaLoadError` when unusable.

    ``check=False`` skips the meta-schema check, for a text that passed it already (in a worker).
    """
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise SchemaLoadError(f"intent schema {path}: not JSON: {exc.msg} at {where}") from None
    if not isinstance(schema, (dict, bool)):
        raise SchemaLoadError(f"intent schema {path}: not a JSON Schema (the top level must be an object)")
    cls: Any = validators.Draft202012Validator
    if isinstance(schema, dict) and "$schema" in schema:
        cls = validators.validator_for(schema, default=cast(Any, None))  # None: an unknown $schema
        if cls is None:
            raise SchemaLoadError(f"intent schema {path}: unknown $schema {schema['$schema']!r}")
    try:
        if check:
            cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = json_path(list(exc.absolute_path))
        raise SchemaLoadError(f"intent schema {path}: invalid schema at {where}: {exc.message}") from None
    return cls(schema, format_checker=_FORMATS)


class UserSchema:
    """The operator's schema file; pickles as its path and loaded text (the file is not read again)."""

    def __init__(self, path: str, text: str | None = None, *, checked: bool = False) -> None:
        """Load ``path`` (or use its already loaded ``text``) and check it; raises :class:`SchemaLoadError`.

        ``checked=True`` trusts ``text`` to have passed the check already (how a worker gets it).
        """
        self.path = path
        self.text = _load_text(path) if text is None else text
        self._validator = _compile(path, self.text, check=not checked)
        self._label = os.path.basename(path)

    @property
    def spec(self) -> str:
        """The schema file's path, as configured."""
        return self.path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.path, self.text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserSchema) and (self.path, self.text) == (other.path, other.text)

    def __hash__(self) -> int:
        return hash((self.path, self.text))

    def __repr__(self) -> str:
        return f"UserSchema({self.path!r})"

    def check(self, data: dict[str, Any]) -> Intent:
        """The :class:`Intent` of ``data``, or :class:`Rejected` with the most relevant error."""
        try:
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(data))
        except Exception as exc:  # noqa: BLE001 - an unresolvable $ref must fail the intent, not the worker
            raise Rejected(f"schema {self._label}: cannot be applied: {type(exc).__name__}: {exc}") from None
        if error is not None:
            raise Rejected(f"schema {self._label}: {json_path(list(error.absolute_path))}: {error.message}")
        return describe(data)


def _restore(path: str, text: str) -> UserSchema:
    """Unpickle a :class:`UserSchema` in a worker: from its text, without reading or checking again."""
    return UserSchema(path, text, checked=True)
