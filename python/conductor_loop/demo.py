"""Create a demo handoff directory: ``python -m conductor_loop.demo DIR`` (used by ``make demo``)."""

from __future__ import annotations

import json
import os
import sys

DEMO_INTENTS: dict[str, object] = {
    "intent-odu-scale.json": {
        "intent_type": "scaling",
        "target": "odu-high-phy",
        "namespace": "oran-odu",
        "replicas": 5,
        "reason": "traffic peak in sector 123",
        "source": "planner",
        "correlation_id": "demo-odu-001",
        "priority": 8,
    },
    "intent-cu-scale.json": {
        "intent_type": "scaling",
        "target": "cu-cp",
        "namespace": "oran-cu",
        "replicas": 3,
        "source": "user",
    },
    "intent-ric-deploy.json": {
        "intent_type": "deployment",
        "target": "near-rt-ric",
        "namespace": "oran-ric",
        "replicas": 2,
        "priority": 2,
    },
    # Invalid on purpose: replicas out of range and an unknown field.
    "intent-bad-replicas.json": {
        "intent_type": "scaling",
        "target": "odu-low",
        "namespace": "oran-odu",
        "replicas": 500,
        "colour": "blue",
    },
}


def make_demo(root: str) -> str:
    """Write the demo intents into ``root/handoff`` and return that directory."""
    handoff = os.path.join(root, "handoff")
    os.makedirs(handoff, exist_ok=True)
    for name, body in DEMO_INTENTS.items():
        with open(os.path.join(handoff, name), "w", encoding="utf-8") as f:
            json.dump(body, f, indent=2)
            f.write("\n")
    # Files the loop must never touch.
    for name in (".intent-draft.json.tmp", "notes.txt"):
        with open(os.path.join(handoff, name), "w", encoding="utf-8") as f:
            f.write("not an intent\n")
    return handoff


if __name__ == "__main__":
    print(make_demo(sys.argv[1] if len(sys.argv) > 1 else "demo"))
