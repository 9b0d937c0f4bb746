"""``--intent-schema`` end to end: real `run --once` with the fake porch and the built-in porch, `validate`,
`config show`, and broken schema files (real processes, real files)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import read_calls, run_cli, statuses, write_intent
from intent_fixtures import KINDS, flat, k8s

pytestmark = pytest.mark.timeout(180)

SCALING_ONLY = "the built-in porch generates packages for scaling intents only; use an external porch"


def once(handoff: Path, out: Path, *extra: str, env: dict[str, str] | None = None):
    return run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out), "--debounce", "50ms",
                   "--workers", "2", *extra, env=env)


def failed_reason(handoff: Path, name: str) -> str:
    assert (handoff / "failed" / name).exists(), name
    doc = statuses(handoff)[name]
    assert doc["status"] == "failed"
    assert doc["message"] in (handoff / "failed" / f"{name}.error.log").read_text()
    return str(doc["message"])


def test_once_mixing_both_styles_every_valid_one_reaches_porch_with_the_exact_argv(
        handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path) -> None:
    valid: dict[str, dict[str, Any]] = {
        "intent-flat-scaling.json": flat(correlation_id="flat-1"),
        "intent-flat-deployment.json": flat(intent_type="deployment", replicas=None),
        "intent-flat-service.json": flat(intent_type="service", target="Any_Name", replicas=2.5),
    }
    for kind in KINDS:
        valid[f"intent-k8s-{kind.lower()}.json"] = k8s(kind)
    valid["intent-k8s-scalingintent.json"]["metadata"]["annotations"] = {"nephoran.io/correlation-id": "k8s-1"}
    invalid = {
        "intent-bad-replicas.json": (flat(replicas=0), "go-compat: $.replicas: must be from 1 to 100, got 0"),
        "intent-bad-action.json": (k8s("NetworkIntent", action="create"),
                                   "go-compat: $.spec.action: must be one of deploy, scale, update, delete"),
        "intent-bad-version.json": (dict(k8s(), apiVersion="nephoran.com/"), "go-compat: $.apiVersion:"),
        "intent-bad-label.json": (k8s(), "go-compat: $.metadata.labels"),
    }
    invalid["intent-bad-label.json"][0]["metadata"]["labels"] = {"bad key": "x"}
    for name, body in valid.items():
        write_intent(handoff, name, body)
    for name, (body, _) in invalid.items():
        write_intent(handoff, name, body)
    (handoff / "intent-surrogate.json").write_text('{"apiVersion": "v1", "kind": "ServiceIntent", '
                                                   '"spec": {"ports": ["\\udfff"]}}')
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    r = once(handoff, out_dir, "--porch", str(fake_porch), "--intent-schema", "go-compat", env=env)
    assert r.returncode == 8, r.stderr
    assert f"processed {len(valid)}, skipped 0, failed {len(invalid) + 1}" in r.stdout

    calls = {Path(c["argv"][2]).name: c for c in read_calls(porch_log)}
    assert set(calls) == set(valid)
    for name in valid:
        assert calls[name]["argv"] == [str(fake_porch), "-intent", str(handoff / name), "-out", str(out_dir)]
        assert (handoff / "processed" / name).exists()
    assert calls["intent-flat-scaling.json"]["env"]["CONDUCTOR_CORRELATION_ID"] == "flat-1"
    assert calls["intent-k8s-scalingintent.json"]["env"]["CONDUCTOR_CORRELATION_ID"] == "k8s-1"
    st = statuses(handoff)
    assert st["intent-k8s-scalingintent.json"]["correlation_id"] == "k8s-1"
    assert st["intent-k8s-networkintent.json"]["status"] == "success"

    for name, (_, reason) in invalid.items():
        assert failed_reason(handoff, name).startswith(f"invalid intent: {reason}"), name
    assert failed_reason(handoff, "intent-surrogate.json") == (
        "invalid intent: lone surrogate escape at $.spec.ports[0]: "
        "a \\uD800-\\uDFFF escape without its pair is not text")


def test_default_schema_rejects_kubernetes_style_with_the_hint(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-k8s.json", k8s())
    write_intent(handoff, "intent-extra.json", flat())
    r = once(handoff, out_dir)
    assert r.returncode == 8, r.stderr
    assert failed_reason(handoff, "intent-k8s.json") == (
        "invalid intent: unknown field(s): apiVersion, kind, metadata, spec; looks like a Kubernetes-style intent: "
        "run with --intent-schema go-compat to accept the Go loop's formats")
    assert failed_reason(handoff, "intent-extra.json") == "invalid intent: unknown field(s): timestamp"


def test_builtin_porch_makes_packages_for_scaling_intents_only(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-flat.json", flat(namespace="oran", target="odu", replicas=4))
    write_intent(handoff, "intent-k8s-scale.json", k8s("ScalingIntent", target="cu-cp", replicas=6))
    for kind in ("NetworkIntent", "ResourceIntent", "DeploymentIntent", "ServiceIntent"):
        write_intent(handoff, f"intent-k8s-{kind.lower()}.json", k8s(kind))
    write_intent(handoff, "intent-flat-deployment.json", flat(intent_type="deployment", replicas=None))
    write_intent(handoff, "intent-flat-service.json", flat(intent_type="service"))
    no_target = k8s("ScalingIntent", target=None)
    write_intent(handoff, "intent-no-target.json", no_target)
    no_namespace = k8s("ScalingIntent")
    del no_namespace["metadata"]["namespace"]
    write_intent(handoff, "intent-no-namespace.json", no_namespace)
    write_intent(handoff, "intent-escape.json", flat(target="../../../escaped", namespace=".."))
    write_intent(handoff, "intent-fraction.json", flat(replicas=2.5))
    r = once(handoff, out_dir, "--intent-schema", "go-compat")
    assert r.returncode == 8, r.stderr
    assert "processed 2, skipped 0, failed 10" in r.stdout

    assert (out_dir / "oran" / "odu-scaling" / "scaling-patch.yaml").is_file()
    patch = (out_dir / "oran-odu" / "cu-cp-scaling" / "scaling-patch.yaml").read_text()
    assert "replicas: 6" in patch and 'nephoran.io/intent-type: "ScalingIntent"' in patch
    for name in ("intent-k8s-networkintent.json", "intent-k8s-resourceintent.json", "intent-k8s-deploymentintent.json",
                 "intent-k8s-serviceintent.json", "intent-flat-deployment.json", "intent-flat-service.json"):
        assert failed_reason(handoff, name) == SCALING_ONLY, name
        assert statuses(handoff)[name]["attempts"] == 1
    assert failed_reason(handoff, "intent-no-target.json") == "the built-in porch needs target to place the package"
    assert failed_reason(handoff, "intent-no-namespace.json") == (
        "the built-in porch needs namespace to place the package")
    assert failed_reason(handoff, "intent-escape.json").startswith(
        "the built-in porch needs namespace to be a DNS-1123 label")
    assert failed_reason(handoff, "intent-fraction.json") == "the built-in porch needs replicas as a whole number"
    outside = [p for p in out_dir.parent.rglob("*scaling*") if out_dir not in p.parents]
    assert outside == []
    assert sorted(str(p.relative_to(out_dir)) for p in out_dir.iterdir()) == ["oran", "oran-odu"]


DRAFT7_SITE = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["intent_type", "target", "namespace", "site"],
    "properties": {"site": {"type": "string", "pattern": "^dc-[0-9]+$"}, "replicas": {"maximum": 5}},
}


def test_user_schema_reaches_the_workers(handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path,
                                         tmp_path: Path) -> None:
    schema = tmp_path / "site-schema.json"
    schema.write_text(json.dumps(DRAFT7_SITE))
    for i in range(4):
        write_intent(handoff, f"intent-ok-{i}.json", flat(site=f"dc-{i}"))
    write_intent(handoff, "intent-no-site.json", flat())
    write_intent(handoff, "intent-too-many.json", flat(site="dc-9", replicas=50))
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_INTENT_SCHEMA": str(schema)}
    r = once(handoff, out_dir, "--porch", str(fake_porch), env=env)
    assert r.returncode == 8, r.stderr
    assert sorted(Path(c["argv"][2]).name for c in read_calls(porch_log)) == [f"intent-ok-{i}.json" for i in range(4)]
    assert failed_reason(handoff, "intent-no-site.json") == (
        "invalid intent: schema site-schema.json: $: 'site' is a required property")
    assert failed_reason(handoff, "intent-too-many.json") == (
        "invalid intent: schema site-schema.json: $.replicas: 50 is greater than the maximum of 5")


# --- broken schema files, configuration layers, validate ------------------------------------------------


@pytest.mark.parametrize(("content", "problem"), [
    ("{ nope", "not JSON"),
    ('{"type": 12}', "invalid schema at $.type"),
    (None, "not found"),
])
def test_broken_schema_is_exit_2_naming_the_file(handoff: Path, out_dir: Path, tmp_path: Path, content: str | None,
                                                 problem: str) -> None:
    schema = tmp_path / "broken-schema.json"
    if content is not None:
        schema.write_text(content)
    write_intent(handoff, "intent-a.json")
    for args in (["run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--intent-schema", str(schema)],
                 ["validate", "--intent-schema", str(schema), str(handoff / "intent-a.json")],
                 ["config", "show", "--intent-schema", str(schema)]):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert f"intent schema {schema}: {problem}" in r.stderr
        assert "Traceback" not in r.stderr
    assert (handoff / "intent-a.json").exists()  # nothing was touched
    assert not (handoff / "processed").exists()


def test_config_show_names_the_source_of_intent_schema(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text("{}")
    config = tmp_path / "config.toml"
    config.write_text(f'intent-schema = "{schema}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}

    def shown(*args: str, **extra: str) -> dict[str, str]:
        r = run_cli("config", "show", "--json", *args, env={**env, **extra})
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["intent_schema"]  # type: ignore[no-any-return]

    assert shown() == {"value": "builtin", "source": "default"}
    assert shown("--config", str(config)) == {"value": str(schema), "source": f"file {config}"}
    assert shown("--config", str(config), CONDUCTOR_INTENT_SCHEMA="go-compat") == {
        "value": "go-compat", "source": "env CONDUCTOR_INTENT_SCHEMA"}
    assert shown("--config", str(config), "--intent-schema", "builtin", CONDUCTOR_INTENT_SCHEMA="go-compat") == {
        "value": "builtin", "source": "flag"}
    r = run_cli("config", "show", "--intent-schema", "go_compat", env=env)
    assert r.returncode == 2 and "flag --intent-schema='go_compat': intent schema 'go_compat': unknown" in r.stderr


def test_validate_with_each_schema_and_never_a_traceback(tmp_path: Path) -> None:
    k = tmp_path / "intent-k8s.json"
    k.write_text(json.dumps(k8s()))
    f = tmp_path / "intent-flat.json"
    f.write_text(json.dumps(flat()))
    s = tmp_path / "intent-surrogate.json"
    s.write_text('{"intent_type": "scaling", "target": "odu", "namespace": "oran", "replicas": 3, '
                 '"metadata": {"\\udfff": "x"}, "reason": "\\ud800"}')
    r = run_cli("validate", str(k), str(f), str(s))
    assert r.returncode == 1 and r.stderr == ""
    assert "looks like a Kubernetes-style intent: run with --intent-schema go-compat" in r.stdout
    assert f"{f}: unknown field(s): timestamp" in r.stdout
    assert f'{s}: lone surrogate escape at $.metadata (in the key "\\udfff")' in r.stdout
    r = run_cli("validate", "--intent-schema", "go-compat", str(k), str(f), str(s))
    assert r.returncode == 1 and r.stderr == "", r.stderr
    assert f"{k}: ok\n{f}: ok\n" in r.stdout and f"{s}: lone surrogate escape" in r.stdout
    r = run_cli("validate", "--intent-schema", "go-compat", str(k), str(f))
    assert r.returncode == 0 and r.stdout == f"{k}: ok\n{f}: ok\n"
