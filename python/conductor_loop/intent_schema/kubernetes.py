"""The Kubernetes style of the go-compat schema (the Go loop's default-mode rules):

- ``apiVersion`` like ``group/v1`` (a DNS-1123 subdomain, ``/``, a version such as ``v1`` or ``v1beta2``)
  or a bare version such as ``v1``;
- ``kind`` one of :data:`KINDS`;
- ``metadata``, when present, an object; ``metadata.name`` and ``metadata.namespace``, where present,
  DNS-1123 subdomains (at most 253 characters); ``metadata.labels`` keys and values as in Kubernetes;
- ``spec`` an object, checked per kind:

  - ``NetworkIntent``: ``action`` one of deploy, scale, update, delete; ``target`` an object;
    ``parameters.networkFunctions[]`` objects with non-empty ``name`` and ``type`` strings, whose
    ``resources`` hold ``cpu``/``memory``/``storage`` as non-empty strings; ``parameters.connectivity``
    and ``parameters.sla`` objects of strings; ``constraints`` an object (each only when present);
  - ``ResourceIntent``: ``action`` a non-empty string;
  - ``ScalingIntent``: ``replicas`` a number from 1 to 100;
  - ``DeploymentIntent``: ``target`` a non-empty string;
  - ``ServiceIntent``: ``ports`` an array.

Other keys are allowed everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import conductor_loop.intent_schema.rules as rules
from conductor_loop.intent_schema.base import json_type, shown
from conductor_loop.k8snames import (
    SUBDOMAIN_RULE,
    is_dns1123_subdomain,
    label_key_problem,
    label_value_problem,
)

KINDS = ("NetworkIntent", "ResourceIntent", "ScalingIntent", "DeploymentIntent", "ServiceIntent")
NETWORK_ACTIONS = ("deploy", "scale", "update", "delete")
_VERSION = re.compile(r"v[1-9][0-9]*(?:(?:alpha|beta)[1-9][0-9]*)?")


def _api_version(data: dict[str, Any]) -> None:
    value = data["apiVersion"]
    if isinstance(value, str):
        group, slash, version = value.rpartition("/")
        if _VERSION.fullmatch(version) and (not slash or is_dns1123_subdomain(group)):
            return
    got = shown(value) if isinstance(value, str) else json_type(value)
    raise rules.fail(["apiVersion"], f"must look like group/v1 or v1, got {got}")


def _metadata(data: dict[str, Any]) -> None:
    metadata = rules.optional(data, "metadata", dict, [])
    if metadata is None:
        return
    for key in ("name", "namespace"):
        if key not in metadata:
            continue
        value = metadata[key]
        if not isinstance(value, str) or not is_dns1123_subdomain(value):
            got = shown(value) if isinstance(value, str) else json_type(value)
            raise rules.fail(["metadata", key], f"must be a DNS-1123 subdomain ({SUBDOMAIN_RULE}), got {got}")
    labels = rules.optional(metadata, "labels", dict, ["metadata"])
    for key, value in (labels or {}).items():
        problem = label_key_problem(key)
        if problem is not None:
            raise rules.fail(["metadata", "labels", key], f"not a label key: {problem}")
        if not isinstance(value, str):
            raise rules.fail(["metadata", "labels", key], f"must be a string, got {json_type(value)}")
        problem = label_value_problem(value)
        if problem is not None:
            raise rules.fail(["metadata", "labels", key], f"not a label value: {problem}")


def _strings_object(parent: dict[str, Any], key: str, path: rules.Path) -> None:
    table = rules.optional(parent, key, dict, path)
    for name, value in (table or {}).items():
        if not isinstance(value, str):
            raise rules.fail([*path, key, name], f"must be a string, got {json_type(value)}")


def _network_function(item: Any, path: rules.Path) -> None:
    if not isinstance(item, dict):
        raise rules.fail(path, f"must be an object, got {json_type(item)}")
    rules.non_empty_string(item, "name", path)
    rules.non_empty_string(item, "type", path)
    resources = rules.optional(item, "resources", dict, path)
    for key in ("cpu", "memory", "storage"):
        if resources is not None and key in resources:
            rules.non_empty_string(resources, key, [*path, "resources"])


def _network(spec: dict[str, Any]) -> None:
    rules.choice(spec, "action", NETWORK_ACTIONS, ["spec"])
    rules.optional(spec, "target", dict, ["spec"])
    rules.optional(spec, "constraints", dict, ["spec"])
    params = rules.optional(spec, "parameters", dict, ["spec"])
    if params is None:
        return
    where: rules.Path = ["spec", "parameters"]
    functions = rules.optional(params, "networkFunctions", list, where)
    for i, item in enumerate(functions or []):
        _network_function(item, [*where, "networkFunctions", i])
    _strings_object(params, "connectivity", where)
    _strings_object(params, "sla", where)


_SPEC_RULES: dict[str, Callable[[dict[str, Any]], None]] = {
    "NetworkIntent": _network,
    "ResourceIntent": lambda spec: rules.non_empty_string(spec, "action", ["spec"]),
    "ScalingIntent": lambda spec: rules.replicas(spec, ["spec"], required=True),
    "DeploymentIntent": lambda spec: rules.non_empty_string(spec, "target", ["spec"]),
    "ServiceIntent": lambda spec: rules.required(spec, "ports", list, ["spec"]),
}


def check_kubernetes(data: dict[str, Any]) -> None:
    """The Kubernetes style's rules; raises :class:`~conductor_loop.intent_schema.base.Rejected`."""
    _api_version(data)
    rules.choice(data, "kind", KINDS, [])
    _metadata(data)
    spec = rules.required(data, "spec", dict, [])
    _SPEC_RULES[data["kind"]](spec)
