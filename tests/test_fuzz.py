"""Fuzzing the validator and the built-in generator with hypothesis (fixed example budget, derandomized in CI).

- Whatever bytes arrive, validation raises nothing but :class:`ValidationError`, whose reason is one
  printable line of bounded length.
- Every intent the built-in schema accepts renders YAML that parses back to the same values.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor_loop.intent_schema import load_schema
from conductor_loop.porch import generate_package
from conductor_loop.validate import REASON_MAX, ValidationError, parse_intent

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SCHEMAS = [load_schema("builtin"), load_schema("go-compat")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
dns = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")
valid_intents = st.fixed_dictionaries(
    {"intent_type": st.sampled_from(["scaling", "deployment", "configuration"]), "target": dns,
     "namespace": dns, "replicas": st.integers(1, 100)},
    optional={"reason": st.text(max_size=200), "source": st.sampled_from(["user", "planner", "test"]),
              "correlation_id": st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1,
                                        max_size=40),
              "priority": st.integers(0, 10)},
)


def _check(content: bytes) -> None:
    for schema in SCHEMAS:
        try:
            parse_intent(content, schema)
        except ValidationError as exc:
            reason = exc.reason
            assert reason and "\n" not in reason and len(reason) <= REASON_MAX + 60, reason
            assert "Traceback" not in reason and "sys.set_int_max_str_digits" not in reason, reason
            reason.encode("utf-8")  # printable and recordable: no lone surrogate in the reason


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_only_ever_fail_validation(content: bytes) -> None:
    _check(content)


@FUZZ
@given(json_values)
def test_random_json_only_ever_fails_validation(value: Any) -> None:
    _check(json.dumps(value).encode())


@FUZZ
@given(valid_intents, st.sampled_from(["", "x" * 3, "\\ud800", "\\udfff", '\\"', "\\u0000"]),
       st.sampled_from(["target", "namespace", "intent_type", "reason", "correlation_id"]))
def test_mutated_valid_intents_only_ever_fail_validation(body: dict[str, Any], noise: str, key: str) -> None:
    text = json.dumps(body)
    _check(text.encode())
    if isinstance(body.get(key), str):
        _check(text.replace(json.dumps(body[key]), json.dumps(body[key])[:-1] + noise + '"', 1).encode())


@FUZZ
@given(valid_intents, st.booleans())
def test_accepted_intents_render_yaml_that_parses_back(tmp_path_factory: pytest.TempPathFactory,
                                                      body: dict[str, Any], structured: bool) -> None:
    intent = parse_intent(json.dumps(body).encode())
    out = tmp_path_factory.mktemp("pkg")
    pkg = Path(generate_package(intent, str(out), structured=structured))
    assert pkg.parent.parent == out and pkg.name == f"{body['target']}-scaling"
    kpt = yaml.safe_load((pkg / "Kptfile").read_text())
    assert kpt["metadata"]["name"] == f"{body['target']}-scaling"
    patch = yaml.safe_load((pkg / "scaling-patch.yaml").read_text())
    assert patch["metadata"]["name"] == body["target"]
    assert patch["metadata"]["namespace"] == body["namespace"]
    assert patch["spec"]["replicas"] == body["replicas"]
    assert patch["metadata"]["annotations"]["nephoran.io/intent-type"] == body["intent_type"]
    for f in pkg.iterdir():
        if f.suffix in (".yaml", "") and f.name != "README.md":
            yaml.safe_load(f.read_text())  # every YAML file parses
