"""The :class:`Intent` record: what the rest of the loop reads from a validated intent, in both styles.

An intent file is **Kubernetes style** when its top-level object has both ``apiVersion`` and ``kind``
(``{"apiVersion": "nephoran.com/v1", "kind": "ScalingIntent", "metadata": {...}, "spec": {...}}``),
otherwise **flat style** (``{"intent_type": "scaling", "target": ..., "namespace": ..., "replicas": ...}``).
:func:`describe` reads the same fields from either, whichever schema accepted the document
(see README, "Migrating from the Go loop"):

============== ======================================= =================================================
field          flat style                              Kubernetes style
============== ======================================= =================================================
intent_type    ``intent_type``                         ``kind``
namespace      ``namespace``                           ``metadata.namespace``
target         ``target``                              ``spec.target``
replicas       ``replicas``                            ``spec.replicas``
priority       ``priority`` (0..10, else 5)            ``spec.priority`` (0..10, else 5)
correlation_id ``correlation_id``                      ``metadata.annotations`` then ``metadata.labels``,
                                                       key ``nephoran.io/correlation-id``, then
                                                       ``correlation_id``
============== ======================================= =================================================

A field that is absent or of the wrong type is ``None`` (priority: the default 5); ``replicas`` is set only
for a whole number. ``scaling`` says whether the intent is a scaling intent, the only kind the built-in
porch makes packages for: a flat ``intent_type: scaling`` or a ``kind: ScalingIntent`` (and every intent of
the built-in schema, which is the Nephoran scaling schema). Nothing here rejects anything: the schema did that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FLAT, KUBERNETES = "flat", "kubernetes"
DEFAULT_PRIORITY = 5
CORRELATION_KEYS = ("nephoran.io/correlation-id", "correlation_id")
"""Keys looked up, in this order, in ``metadata.annotations`` and then ``metadata.labels``."""


@dataclass(frozen=True, slots=True)
class Intent:
    """A validated intent. ``data`` is the whole parsed JSON object; ``style`` is ``flat`` or ``kubernetes``."""

    intent_type: str | None
    target: str | None
    namespace: str | None
    replicas: int | None
    priority: int = DEFAULT_PRIORITY
    correlation_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    style: str = FLAT
    scaling: bool = True


def style_of(data: Mapping[str, Any]) -> str:
    """``kubernetes`` when the object has both ``apiVersion`` and ``kind``, else ``flat``."""
    return KUBERNETES if "apiVersion" in data and "kind" in data else FLAT


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a JSON number with no fraction (``3`` or ``3.0``), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _priority(value: Any) -> int:
    n = _whole(value)
    return n if n is not None and 0 <= n <= 10 else DEFAULT_PRIORITY


def _correlation_id(metadata: Mapping[str, Any]) -> str | None:
    for where in ("annotations", "labels"):
        table = _obj(metadata.get(where))
        for key in CORRELATION_KEYS:
            value = _str(table.get(key))
            if value:
                return value
    return None


SCALING_TYPES = ("scaling", "ScalingIntent")
"""``intent_type`` (flat) or ``kind`` (Kubernetes style) of a scaling intent."""


def describe(data: Mapping[str, Any], *, scaling: bool | None = None) -> Intent:
    """The :class:`Intent` of an accepted document, read as the table in the module docstring says.

    ``scaling`` overrides what the type or kind says (the built-in schema passes ``True``).
    """
    if "apiVersion" in data and "kind" in data:  # style_of(data) == KUBERNETES, inlined
        metadata, spec = _obj(data.get("metadata")), _obj(data.get("spec"))
        if scaling is None:
            scaling = data["kind"] in SCALING_TYPES
        return Intent(
            intent_type=_str(data.get("kind")),
            target=_str(spec.get("target")),
            namespace=_str(metadata.get("namespace")),
            replicas=_whole(spec.get("replicas")),
            priority=_priority(spec.get("priority")),
            correlation_id=_correlation_id(metadata),
            data=data,
            style=KUBERNETES,
            scaling=scaling,
        )
    # The hot path (one call per intent): plain lookups, the helpers only for unusual values.
    get = data.get
    kind, target, namespace = get("intent_type"), get("target"), get("namespace")
    if scaling is None:
        scaling = kind in SCALING_TYPES
    replicas, priority, correlation_id = get("replicas"), get("priority", DEFAULT_PRIORITY), get("correlation_id")
    return Intent(
        kind if type(kind) is str else None,
        target if type(target) is str else None,
        namespace if type(namespace) is str else None,
        replicas if type(replicas) is int else _whole(replicas),
        priority if type(priority) is int and 0 <= priority <= 10 else _priority(priority),
        correlation_id if type(correlation_id) is str else None,
        data,
        FLAT,
        scaling,
    )
