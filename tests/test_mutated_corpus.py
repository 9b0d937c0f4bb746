"""A corpus of mutated intents through a real ``run --once``: every file ends in exactly one place, whole,
with a status that matches it, and the loop neither crashes nor hangs (docs/SECURITY.md)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from conftest import VALID, run_cli, statuses

pytestmark = pytest.mark.timeout(300)

CORPUS = [
    VALID,
    {**VALID, "priority": 9, "correlation_id": "c-1", "reason": "scale up"},
    {"apiVersion": "nephoran.com/v1", "kind": "ScalingIntent", "metadata": {"name": "a", "namespace": "ran"},
     "spec": {"replicas": 3}},
]


def _mutations(rng: random.Random, body: bytes) -> bytes:
    """One random mutation of ``body``: bytes flipped, cut, spliced, or a value made hostile."""
    kind = rng.randrange(8)
    if kind == 0:
        i = rng.randrange(len(body))
        return body[:i] + bytes([rng.randrange(256)]) + body[i + 1:]
    if kind == 1:
        return body[: rng.randrange(len(body))]
    if kind == 2:
        return body.replace(b'"', b"", 1)
    if kind == 3:
        return body.replace(b'"ran"' if b'"ran"' in body else b'"oran-odu"', b'"\\udfff"')
    if kind == 4:
        return body.replace(b"3", b"9" * rng.choice([3, 40, 5000]), 1)
    if kind == 5:
        return b"[" * rng.choice([10, 70, 5000]) + body
    if kind == 6:
        return body.replace(b"}", b', "x": "' + b"y" * rng.choice([10, 20000]) + b'"}', 1)
    return b"\xef\xbb\xbf" + body


def test_mutated_corpus_ends_in_one_place_each(handoff: Path, out_dir: Path) -> None:
    rng = random.Random(20261130)
    bodies: dict[str, bytes] = {}
    valid: set[str] = set()
    for i in range(120):
        name = f"intent-{i:03d}.json"
        original = rng.choice(CORPUS)
        body = json.dumps(original).encode()
        if i % 6:  # most are mutated, some stay valid
            body = _mutations(rng, body)
        elif "kind" not in original:
            valid.add(name)  # flat and whole: the built-in schema accepts it
        (handoff / name).write_bytes(body)
        bodies[name] = body
    for schema in ("builtin", "go-compat"):
        r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--intent-schema", schema,
                    "--debounce", "50ms", timeout=240)
        assert r.returncode in (0, 8), r.stderr
        assert "Traceback" not in r.stderr
    assert not list(handoff.glob("intent-*.json"))
    docs = statuses(handoff)
    for name, body in bodies.items():
        places = [d for d in ("processed", "failed") if (handoff / d / name).exists()]
        assert len(places) == 1, (name, places)
        assert (handoff / places[0] / name).read_bytes() == body, name
        doc = docs[name]
        assert doc["moved_to"] == str(handoff / places[0] / name)
        assert doc["status"] == ("failed" if places[0] == "failed" else "success"), doc
        assert doc["sha256"] in (None, hashlib.sha256(body).hexdigest())
        assert len(doc["message"]) <= 500 and "\n" not in doc["message"]
    assert valid and all(docs[name]["status"] == "success" for name in valid)
