"""``--intent-schema go-compat``: the Go loop's default-mode rules, both styles (README, "Migrating
from the Go loop").

A document with both ``apiVersion`` and ``kind`` is Kubernetes style (:mod:`.kubernetes`); anything
else is flat scaling style:

- ``intent_type`` one of ``scaling``, ``deployment``, ``service``;
- ``target`` and ``namespace`` non-empty strings;
- ``replicas`` required for ``scaling``; when present, a number from 1 to 100;
- ``source``, when present, one of ``user``, ``planner``, ``test``;
- any other key is allowed.

The first broken rule is reported as ``go-compat: <JSONPath>: <what>``.
"""

from __future__ import annotations

from typing import Any

import conductor_loop.intent_schema.rules as rules
from conductor_loop.intent import KUBERNETES, Intent, describe, style_of
from conductor_loop.intent_schema.kubernetes import check_kubernetes

INTENT_TYPES = ("scaling", "deployment", "service")
SOURCES = ("user", "planner", "test")


def check_flat(data: dict[str, Any]) -> None:
    """The flat scaling style's rules; raises :class:`~conductor_loop.intent_schema.base.Rejected`."""
    rules.choice(data, "intent_type", INTENT_TYPES, [])
    rules.non_empty_string(data, "target", [])
    rules.non_empty_string(data, "namespace", [])
    rules.replicas(data, [], required=data["intent_type"] == "scaling")
    if "source" in data:
        rules.choice(data, "source", SOURCES, [])


class GoCompatSchema:
    """The Go loop's rules; stateless, one instance per process (:data:`GO_COMPAT`)."""

    spec = rules.NAME

    def __reduce__(self) -> str:
        return "GO_COMPAT"  # pickles as a reference to the module's instance

    def __repr__(self) -> str:
        return "GoCompatSchema()"

    def check(self, data: dict[str, Any]) -> Intent:
        """The :class:`Intent` of ``data`` in either style, or :class:`Rejected`."""
        if style_of(data) == KUBERNETES:
            check_kubernetes(data)
        else:
            check_flat(data)
        return describe(data)


GO_COMPAT = GoCompatSchema()
