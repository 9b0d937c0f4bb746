"""The built-in porch: package content (parsed with PyYAML), atomic replacement, concurrency, CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from conductor_loop.porch import APPLY_REPLACEMENTS_IMAGE, _q, generate_package, main
from conductor_loop.validate import Intent, parse_intent

NOW = datetime(2026, 1, 15, 10, 15, 2, 123456, tzinfo=timezone.utc)


def make_intent(**changes: Any) -> Intent:
    data: dict[str, Any] = {"intent_type": "scaling", "target": "odu-high-phy", "namespace": "oran-odu"}
    data["replicas"] = 5
    data.update(changes)
    return parse_intent(json.dumps(data).encode())


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def all_keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [k for k in node] + [k2 for v in node.values() for k2 in all_keys(v)]
    if isinstance(node, list):
        return [k for v in node for k in all_keys(v)]
    return []


def check_lowercase_krm(doc: dict[str, Any]) -> None:
    assert "apiVersion" in doc and "kind" in doc and "metadata" in doc
    for key in all_keys(doc):
        assert not key[:1].isupper(), f"Go-cased key {key!r}"


def test_direct_package(tmp_path: Path) -> None:
    pkg = Path(generate_package(make_intent(), str(tmp_path), structured=False, now=NOW))
    assert pkg == tmp_path / "oran-odu" / "odu-high-phy-scaling"
    assert sorted(os.listdir(pkg)) == ["Kptfile", "scaling-patch.yaml"]

    kpt = load(pkg / "Kptfile")
    check_lowercase_krm(kpt)
    assert kpt["apiVersion"] == "kpt.dev/v1"
    assert kpt["kind"] == "Kptfile"
    assert kpt["metadata"]["name"] == "odu-high-phy-scaling"
    assert "odu-high-phy" in kpt["info"]["description"]
    assert "pipeline" not in kpt

    patch = load(pkg / "scaling-patch.yaml")
    check_lowercase_krm(patch)
    assert patch["apiVersion"] == "apps/v1"
    assert patch["kind"] == "Deployment"
    assert patch["metadata"]["name"] == "odu-high-phy"
    assert patch["metadata"]["namespace"] == "oran-odu"
    assert patch["metadata"]["annotations"] == {
        "nephoran.io/intent-type": "scaling",
        "nephoran.io/generated-at": "2026-01-15T10:15:02Z",
        "config.kubernetes.io/merge-policy": "replace",
    }
    assert patch["spec"] == {"replicas": 5}
    assert type(patch["spec"]["replicas"]) is int


def test_structured_package(tmp_path: Path) -> None:
    intent = make_intent(intent_type="deployment", replicas=42)
    pkg = Path(generate_package(intent, str(tmp_path), structured=True, now=NOW))
    assert sorted(os.listdir(pkg)) == [
        "Kptfile",
        "README.md",
        "apply-replacements.yaml",
        "scaling-patch.yaml",
        "scaling-values.yaml",
    ]
    kpt = load(pkg / "Kptfile")
    check_lowercase_krm(kpt)
    mutators = kpt["pipeline"]["mutators"]
    assert mutators == [{"image": APPLY_REPLACEMENTS_IMAGE, "configPath": "apply-replacements.yaml"}]
    assert APPLY_REPLACEMENTS_IMAGE == "gcr.io/kpt-fn/apply-replacements:v0.1.1"

    config = load(pkg / mutators[0]["configPath"])
    check_lowercase_krm(config)
    assert config["kind"] == "ApplyReplacements"
    values = load(pkg / "scaling-values.yaml")
    check_lowercase_krm(values)
    assert values["kind"] == "ConfigMap"
    assert all(isinstance(v, str) for v in values["data"].values())
    replacement = config["replacements"][0]
    assert replacement["source"]["name"] == values["metadata"]["name"]
    assert replacement["source"]["fieldPath"] == "data.namespace"
    assert replacement["targets"][0]["select"] == {"kind": "Deployment", "name": "odu-high-phy"}
    for doc in (kpt, config, values):
        assert doc["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"

    patch = load(pkg / "scaling-patch.yaml")
    assert patch["spec"]["replicas"] == 42
    assert patch["metadata"]["annotations"]["nephoran.io/intent-type"] == "deployment"
    readme = (pkg / "README.md").read_text()
    assert "odu-high-phy" in readme and "42" in readme


@pytest.mark.parametrize("name", ["true", "null", "123", "1e3", "yes", "0x1f", "no"])
def test_yaml_lookalike_names_stay_strings(tmp_path: Path, name: str) -> None:
    pkg = Path(generate_package(make_intent(target=name, namespace=name), str(tmp_path), structured=True))
    patch = load(pkg / "scaling-patch.yaml")
    assert patch["metadata"]["name"] == name
    assert patch["metadata"]["namespace"] == name
    assert load(pkg / "Kptfile")["metadata"]["name"] == f"{name}-scaling"


@pytest.mark.parametrize(
    "value",
    ["odu-high-phy", "", "a b: c", "2026-01-01T00:00:00Z", 'say "hi"', "back\\slash", "tab\there", "new\nline",
     "\x7f", "\x00", "é", "\u2028", "--- !!python/object", "{a: b}"],
)
def test_quoting_is_json_dumps(value: str) -> None:
    """The fast path for plain names quotes exactly as ``json.dumps`` does, and the result reads back."""
    assert _q(value) == json.dumps(value)
    assert yaml.safe_load(f"k: {_q(value)}") == {"k": value}


def test_naive_now_and_default_now(tmp_path: Path) -> None:
    pkg = Path(generate_package(make_intent(), str(tmp_path), structured=False))
    stamp = load(pkg / "scaling-patch.yaml")["metadata"]["annotations"]["nephoran.io/generated-at"]
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - parsed).total_seconds()) < 60


def leftovers(ns_dir: Path) -> list[str]:
    return sorted(n for n in os.listdir(ns_dir) if n.startswith("."))


def test_regeneration_replaces_whole_package(tmp_path: Path) -> None:
    first = generate_package(make_intent(replicas=3), str(tmp_path), structured=True, now=NOW)
    second = generate_package(make_intent(replicas=7), str(tmp_path), structured=False, now=NOW, durable=True)
    assert first == second
    assert sorted(os.listdir(second)) == ["Kptfile", "scaling-patch.yaml"]  # README etc. of the old one gone
    assert load(Path(second) / "scaling-patch.yaml")["spec"]["replicas"] == 7
    assert leftovers(tmp_path / "oran-odu") == []
    assert os.listdir(tmp_path / "oran-odu") == ["odu-high-phy-scaling"]


def test_other_targets_untouched(tmp_path: Path) -> None:
    a = generate_package(make_intent(target="a"), str(tmp_path), structured=False)
    b = generate_package(make_intent(target="b", replicas=9), str(tmp_path), structured=False)
    generate_package(make_intent(target="a", replicas=1), str(tmp_path), structured=False)
    assert load(Path(b) / "scaling-patch.yaml")["spec"]["replicas"] == 9
    assert load(Path(a) / "scaling-patch.yaml")["spec"]["replicas"] == 1


def test_unwritable_out_raises_and_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        out = tmp_path / "file-not-dir"
        out.write_text("x")
        with pytest.raises(OSError):
            generate_package(make_intent(), str(out), structured=False)
        return
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            generate_package(make_intent(), str(out), structured=False)
    finally:
        out.chmod(0o700)


# --- concurrency -----------------------------------------------------------------------------------

SETS = {
    True: {"Kptfile", "README.md", "apply-replacements.yaml", "scaling-patch.yaml", "scaling-values.yaml"},
    False: {"Kptfile", "scaling-patch.yaml"},
}
REPLICAS = {True: 10, False: 20}


def hammer(out_dir: str, structured: bool, rounds: int) -> None:
    intent = make_intent(replicas=REPLICAS[structured])
    for _ in range(rounds):
        generate_package(intent, out_dir, structured=structured)


def read_at(dir_fd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    with os.fdopen(fd) as fh:
        return fh.read()


@pytest.mark.timeout(120)
def test_concurrent_generation_never_mixed(tmp_path: Path) -> None:
    out = str(tmp_path)
    final = tmp_path / "oran-odu" / "odu-high-phy-scaling"
    generate_package(make_intent(replicas=20), out, structured=False)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=hammer, args=(out, s, 300)) for s in (True, False)]
    for p in procs:
        p.start()
    checked = replaced = 0
    deadline = time.monotonic() + 90
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        try:
            dir_fd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            pytest.fail("the package directory was missing at its final name")
        try:
            inode = os.fstat(dir_fd).st_ino
            names = set(os.listdir(dir_fd))
            try:
                kpt = yaml.safe_load(read_at(dir_fd, "Kptfile"))
                patch = yaml.safe_load(read_at(dir_fd, "scaling-patch.yaml"))
                complete = True
            except FileNotFoundError:
                complete = False
            consistent = False
            if complete:
                for structured, expected in SETS.items():
                    if names == expected:
                        consistent = (
                            patch["spec"]["replicas"] == REPLICAS[structured]
                            and ("pipeline" in kpt) == structured
                            and f"replicas {REPLICAS[structured]}" in kpt["info"]["description"]
                        )
            if consistent:
                checked += 1
            else:
                # Only acceptable if what we looked at had already been swapped out (old copy being removed).
                assert os.stat(final).st_ino != inode, f"mixed or half package at the final name: {names}"
                replaced += 1
        finally:
            os.close(dir_fd)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert checked > 0
    assert leftovers(tmp_path / "oran-odu") == []
    assert set(os.listdir(final)) in list(SETS.values())


# --- stand-alone command ---------------------------------------------------------------------------


def write_intent(tmp_path: Path, **changes: Any) -> str:
    data: dict[str, Any] = {"intent_type": "scaling", "target": "cu-up", "namespace": "ran", "replicas": 4}
    data.update(changes)
    path = tmp_path / "intent-x.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_main_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    intent = write_intent(tmp_path)
    out = tmp_path / "out"
    assert main(["-intent", intent, "-out", str(out)]) == 0
    pkg = out / "ran" / "cu-up-scaling"
    assert capsys.readouterr().out.strip() == str(pkg)
    assert sorted(os.listdir(pkg)) == ["Kptfile", "scaling-patch.yaml"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--intent", "{i}", "--out", "{o}", "--structured"],
        ["--intent={i}", "-out={o}", "-structured"],
        ["-structured", "-out", "{o}", "-intent", "{i}"],
        ["-intent", "{i}", "-out", "{o}", "-structured=true"],
    ],
)
def test_main_spellings(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    intent = write_intent(tmp_path)
    out = str(tmp_path / "out")
    assert main([a.format(i=intent, o=out) for a in argv]) == 0
    assert (tmp_path / "out" / "ran" / "cu-up-scaling" / "README.md").exists()


def test_main_invalid_intent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    intent = write_intent(tmp_path, replicas=0)
    assert main(["-intent", intent, "-out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "schema: replicas: must be >= 1" in captured.err
    assert captured.out == ""
    assert not (tmp_path / "out").exists()


def test_main_missing_intent_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-intent", str(tmp_path / "nope.json"), "-out", str(tmp_path)]) == 1
    assert "No such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["-intent", "x"], ["-out", "d"], ["-intent"], ["-intent", "x", "-out", "d", "-bogus"], ["stray"]],
)
def test_main_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    assert "usage:" in capsys.readouterr().out
