"""The intent schemas: which rules an intent document must follow, chosen once by ``--intent-schema``.

- ``builtin`` (the default, :mod:`.builtin`): the strict Nephoran scaling schema;
- ``go-compat`` (:mod:`.gocompat`, :mod:`.kubernetes`): the Go loop's default-mode rules, flat and
  Kubernetes style;
- a path (:mod:`.user`): the operator's own JSON Schema file.

The loop's safety rules (regular file, size, UTF-8, JSON, depth, no lone surrogates) are not part of a
schema: :mod:`conductor_loop.validate` applies them first, whatever the schema.
"""

from __future__ import annotations

from conductor_loop.intent_schema.base import IntentSchema, Rejected, SchemaLoadError, json_path
from conductor_loop.intent_schema.builtin import BUILTIN
from conductor_loop.intent_schema.gocompat import GO_COMPAT

__all__ = ["BUILTIN", "GO_COMPAT", "IntentSchema", "Rejected", "SchemaLoadError", "json_path", "load_schema"]

NAMES = ("builtin", "go-compat")


def load_schema(spec: str) -> IntentSchema:
    """The schema for an ``--intent-schema`` value: ``builtin``, ``go-compat`` or a JSON Schema file.

    A file is read and checked now, once; raises :class:`SchemaLoadError` (a ``ValueError``) naming the
    file and the problem. A value with no ``/`` and no ``.json`` suffix that is not a known name is an
    error too, so a typo such as ``go_compat`` is not taken for a file name.
    """
    value = spec.strip()
    if value == BUILTIN.spec:
        return BUILTIN
    if value == GO_COMPAT.spec:
        return GO_COMPAT
    if not value:
        raise SchemaLoadError("intent schema: empty; use builtin, go-compat or the path of a JSON Schema file")
    if "/" not in value and not value.endswith(".json"):
        raise SchemaLoadError(
            f"intent schema {value!r}: unknown; use builtin, go-compat or the path of a JSON Schema file "
            "(a relative path needs a '/' or a .json suffix, e.g. ./schema.json)"
        )
    from conductor_loop.intent_schema.user import UserSchema  # jsonschema is imported only when used

    return UserSchema(value)
