"""The built-in porch makes packages for scaling intents only, and only inside ``out`` (real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conductor_loop.executor import BuiltinExecutor, ExecRequest
from conductor_loop.intent import Intent
from conductor_loop.intent_schema import GO_COMPAT
from conductor_loop.porch import SCALING_ONLY, NotBuildable, generate_package, package_dir
from conductor_loop.validate import parse_intent
from intent_fixtures import flat, k8s


def scaling(**over: object) -> Intent:
    fields: dict[str, object] = {"intent_type": "scaling", "target": "odu", "namespace": "oran", "replicas": 3}
    fields.update(over)
    return Intent(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("intent", "message"), [
    (scaling(scaling=False), SCALING_ONLY),
    (scaling(replicas=None), "the built-in porch needs replicas as a whole number"),
    (scaling(namespace=None), "the built-in porch needs namespace to place the package"),
    (scaling(namespace=None, target=None), "the built-in porch needs namespace and target to place the package"),
    (scaling(target="../up"), "the built-in porch needs target to be a DNS-1123 label"),
    (scaling(namespace="/abs"), "the built-in porch needs namespace to be a DNS-1123 label"),
    (scaling(namespace="Oran"), "the built-in porch needs namespace to be a DNS-1123 label"),
])
def test_refused_before_anything_is_written(tmp_path: Path, intent: Intent, message: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(NotBuildable) as info:
        generate_package(intent, str(out), structured=True)
    assert str(info.value).startswith(message)
    with pytest.raises(NotBuildable):
        package_dir(intent, str(out))
    assert list(tmp_path.iterdir()) == []


def test_kubernetes_scaling_intent_package(tmp_path: Path) -> None:
    intent = parse_intent(json.dumps(k8s("ScalingIntent", target="cu-cp", replicas=7)).encode(), GO_COMPAT)
    pkg = Path(generate_package(intent, str(tmp_path), structured=False))
    assert pkg == tmp_path / "oran-odu" / "cu-cp-scaling" == Path(package_dir(intent, str(tmp_path)))
    assert "replicas: 7" in (pkg / "scaling-patch.yaml").read_text()


def request(intent: Intent, out: Path) -> ExecRequest:
    return ExecRequest(intent_path="/x/intent-a.json", out_dir=str(out), structured=False, intent=intent,
                       sha256="0" * 64, attempt=1, timeout=5.0)


def test_builtin_executor_failure_is_final_with_the_message(tmp_path: Path) -> None:
    intent = parse_intent(json.dumps(flat(intent_type="service", replicas=None)).encode(), GO_COMPAT)
    res = BuiltinExecutor().execute(request(intent, tmp_path / "out"))
    assert (res.ok, res.retryable, res.message, res.output_dir) == (False, False, SCALING_ONLY, None)
    ok = BuiltinExecutor().execute(request(parse_intent(json.dumps(flat()).encode(), GO_COMPAT), tmp_path / "out"))
    assert ok.ok and ok.output_dir == str(tmp_path / "out" / "oran-odu" / "odu-high-phy-scaling")
