"""Intent fixtures for the schema tests: one valid document per style and kind (written for these tests).

Each function returns a fresh, valid document; tests change one thing at a time.
"""

from __future__ import annotations

from typing import Any


def flat(**over: Any) -> dict[str, Any]:
    """A flat scaling intent as the Go loop's producers write it (with an extra ``timestamp`` key)."""
    doc: dict[str, Any] = {
        "intent_type": "scaling",
        "target": "odu-high-phy",
        "namespace": "oran-odu",
        "replicas": 3,
        "source": "planner",
        "timestamp": "2026-01-15T10:15:02Z",
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


_SPECS: dict[str, dict[str, Any]] = {
    "NetworkIntent": {
        "action": "deploy",
        "target": {"cluster": "edge-01"},
        "parameters": {
            "networkFunctions": [
                {"name": "upf", "type": "5g-core", "resources": {"cpu": "2", "memory": "4Gi", "storage": "10Gi"}},
                {"name": "amf", "type": "5g-core"},
            ],
            "connectivity": {"n3": "10.0.0.0/24"},
            "sla": {"latency": "10ms", "availability": "99.99"},
        },
        "constraints": {"zone": "a"},
    },
    "ResourceIntent": {"action": "allocate", "resources": {"cpu": "4"}},
    "ScalingIntent": {"replicas": 4, "target": "odu-high-phy", "priority": 9},
    "DeploymentIntent": {"target": "near-rt-ric", "image": "ric:1.0"},
    "ServiceIntent": {"ports": [{"port": 80}], "selector": {"app": "ric"}},
}
KINDS = tuple(_SPECS)


def k8s(kind: str = "ScalingIntent", **spec_over: Any) -> dict[str, Any]:
    """A Kubernetes-style intent of ``kind`` with its spec fields overridden (``None`` removes one)."""
    spec = {**_SPECS[kind], **spec_over}
    return {
        "apiVersion": "nephoran.com/v1",
        "kind": kind,
        "metadata": {
            "name": f"{kind.lower()}-sample",
            "namespace": "oran-odu",
            "labels": {"app.kubernetes.io/name": "odu", "tier": ""},
        },
        "spec": {k: v for k, v in spec.items() if v is not None},
    }
