"""The small commands through the real CLI: validate, porch, --version, --help examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conductor_loop import __version__
from conftest import run_cli, write_intent

pytestmark = pytest.mark.timeout(120)


def test_version() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and __version__ in r.stdout


def test_validate_reports_each_problem_and_exits_1(handoff: Path) -> None:
    good = write_intent(handoff, "intent-good.json")
    bad = write_intent(handoff, "intent-bad.json", replicas=101)
    notjson = handoff / "intent-x.json"
    notjson.write_text("{")
    r = run_cli("validate", str(good))
    assert r.returncode == 0 and r.stdout.strip() == f"{good}: ok"
    r = run_cli("validate", str(good), str(bad), str(notjson), str(handoff / "missing.json"))
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert f"{good}: ok" in lines
    assert any(line.startswith(f"{bad}:") and "replicas" in line for line in lines)
    assert any(line.startswith(f"{notjson}:") and "JSON" in line for line in lines)
    assert any("missing.json" in line for line in lines)


def test_standalone_porch_is_a_drop_in(handoff: Path, tmp_path: Path) -> None:
    intent = write_intent(handoff, "intent-a.json", target="cu-up", namespace="ran", replicas=4)
    out = tmp_path / "pkg"
    r = run_cli("porch", "-intent", str(intent), "-out", str(out), "-structured")
    assert r.returncode == 0, r.stderr
    pkg = out / "ran" / "cu-up-scaling"
    kpt = yaml.safe_load((pkg / "Kptfile").read_text())
    assert kpt["apiVersion"] == "kpt.dev/v1" and kpt["metadata"]["name"] == "cu-up-scaling"
    assert "pipeline" in kpt and (pkg / "README.md").exists()
    assert yaml.safe_load((pkg / "scaling-patch.yaml").read_text())["spec"]["replicas"] == 4
    bad = write_intent(handoff, "intent-b.json", replicas=0)
    assert run_cli("porch", "-intent", str(bad), "-out", str(out)).returncode == 1
    assert run_cli("porch", "-out", str(out)).returncode == 2


@pytest.mark.parametrize(
    "command",
    [["run"], ["status"], ["retry"], ["validate"], ["state", "export"], ["state", "import"],
     ["state", "prune"], ["config", "show"], ["porch"]],
)
def test_every_command_help_has_an_example(command: list[str]) -> None:
    r = run_cli(*command, "--help")
    assert r.returncode == 0, r.stderr
    assert "Example" in r.stdout and "conductor-loop " in r.stdout
