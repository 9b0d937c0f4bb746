"""``--intent-schema builtin`` (the default): the strict Nephoran scaling schema.

``schema/intent.schema.json`` (draft-07, compiled once per process with ``fastjsonschema`` by
:mod:`.compiled`, at the first check; the workers' forkserver compiles it before it forks): flat style
only, no unknown top-level fields, ``intent_type``, ``target``, ``namespace`` and ``replicas`` required;
then ``target`` and ``namespace`` must be DNS-1123 labels, because they become directory and Kubernetes
names. A Kubernetes-style document is rejected with a hint to use ``--intent-schema go-compat``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from conductor_loop.intent import KUBERNETES, Intent, describe, style_of
from conductor_loop.intent_schema.base import Rejected, json_type, shown, shown_key
from conductor_loop.intent_schema.document import SCHEMA
from conductor_loop.k8snames import LABEL_RULE, is_dns1123_label

NAME = "builtin"
KUBERNETES_HINT = (
    "looks like a Kubernetes-style intent: run with --intent-schema go-compat to accept the Go loop's formats"
)

_PROPERTIES: frozenset[str] = frozenset(SCHEMA["properties"])
_REQUIRED: tuple[str, ...] = tuple(SCHEMA["required"])


def _schema_reason(exc: Any) -> str:
    """One line for a fastjsonschema error, e.g. ``schema: replicas: must be <= 100``."""
    name: str = exc.name
    where = name[5:] if name.startswith("data.") else ("(top level)" if name == "data" else name)
    rule, definition = exc.rule, exc.rule_definition
    if rule == "type":
        what = f"must be {definition}, got {json_type(exc.value)}"
    elif rule == "maximum":
        what = f"must be <= {definition}"
    elif rule == "minimum":
        what = f"must be >= {definition}"
    elif rule == "maxLength":
        what = f"must be at most {definition} characters"
    elif rule == "minLength":
        what = f"must be at least {definition} character{'s' if definition != 1 else ''}"
    elif rule == "enum":
        what = "must be one of " + ", ".join(repr(v) for v in definition)
    elif rule == "format" and definition == "date-time":
        what = "must be an RFC 3339 date-time (e.g. 2025-08-28T10:30:00Z)"
    else:
        message: str = exc.message
        what = message[len(name) + 1 :] if message.startswith(name + " ") else message
    return f"schema: {where}: {what}"


@cache
def _compiled() -> tuple[Callable[[Any], Any], type[Exception]]:
    """The compiled schema and its error (:mod:`.compiled`), imported at the first check."""
    from conductor_loop.intent_schema.compiled import INVALID, VALIDATE

    return VALIDATE, INVALID


def _structure(data: dict[str, Any]) -> None:
    unknown = data.keys() - _PROPERTIES
    if unknown:
        raise Rejected("unknown field(s): " + ", ".join(shown_key(k) for k in sorted(unknown)))
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise Rejected("missing required field(s): " + ", ".join(missing))
    validate, invalid = _compiled()
    try:
        validate(data)
    except invalid as exc:
        raise Rejected(_schema_reason(exc)) from None
    problems = [
        f"{key}: {shown(data[key])} is not a DNS-1123 name ({LABEL_RULE})"
        for key in ("target", "namespace")
        if not is_dns1123_label(data[key])
    ]
    if problems:
        raise Rejected("; ".join(problems))


class BuiltinSchema:
    """The strict schema; stateless, one instance per process (:data:`BUILTIN`)."""

    spec = NAME

    def __reduce__(self) -> str:
        return "BUILTIN"  # pickles as a reference to the module's instance

    def __repr__(self) -> str:
        return "BuiltinSchema()"

    def check(self, data: dict[str, Any]) -> Intent:
        """The :class:`Intent` of ``data``, or :class:`Rejected` (with the go-compat hint for Kubernetes style)."""
        try:
            _structure(data)
        except Rejected as exc:
            if style_of(data) == KUBERNETES:
                raise Rejected(f"{exc.reason}; {KUBERNETES_HINT}") from None
            raise
        return describe(data, scaling=True)  # the Nephoran scaling schema: every intent is a scaling intent


BUILTIN = BuiltinSchema()
