"""Shared fixtures: intent writers, the fake porch script, a CLI runner (real subprocesses), nats-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from natsserver import nats, nats_server  # noqa: F401  (fixtures for the fleet tests: a real nats-server)

REPO = Path(__file__).resolve().parent.parent
VALID: dict[str, Any] = {
    "intent_type": "scaling",
    "target": "odu-high-phy",
    "namespace": "oran-odu",
    "replicas": 3,
}


def intent_body(**over: Any) -> dict[str, Any]:
    """A valid intent with fields overridden (a value of None removes the field)."""
    body = {**VALID, **over}
    return {k: v for k, v in body.items() if v is not None}


def write_intent(directory: Path, name: str, body: dict[str, Any] | None = None, **over: Any) -> Path:
    """Write an intent atomically (temp name + rename, like a well-behaved producer)."""
    path = directory / name
    tmp = directory / f".w{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body if body is not None else intent_body(**over)))
    os.rename(tmp, path)
    return path


@pytest.fixture
def handoff(tmp_path: Path) -> Path:
    d = tmp_path / "handoff"
    d.mkdir()
    return d


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def fake_porch(tmp_path: Path) -> Path:
    """tests/fakeporch.py as an executable whose shebang is this interpreter."""
    src = (REPO / "tests" / "fakeporch.py").read_text()
    lines = src.splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    dst = tmp_path / "bin" / "fakeporch"
    dst.parent.mkdir(exist_ok=True)
    dst.write_text(f"#!{sys.executable}\n" + "\n".join(lines) + "\n")
    dst.chmod(0o755)
    return dst


@pytest.fixture
def porch_log(tmp_path: Path) -> Path:
    return tmp_path / "porch-calls.jsonl"


def read_calls(log: Path) -> list[dict[str, Any]]:
    """The fake porch's call log, one dict per call."""
    if not log.exists():
        return []
    calls = []
    for line in log.read_text().splitlines():
        try:
            calls.append(json.loads(line))
        except ValueError:  # a porch killed while it wrote its line (the crash tests do that)
            continue
    return calls


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    """Run ``conductor-loop`` as a real subprocess of this interpreter."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "conductor_loop", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def statuses(handoff: Path) -> dict[str, dict[str, Any]]:
    """status/*.status parsed, keyed by intent file name."""
    out = {}
    for p in (handoff / "status").glob("*.status"):
        doc = json.loads(p.read_text())
        out[doc["intent_file"]] = doc
    return out


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli


def install_plugin(site: Path, module: str, source: str, entry: str, factory: str = "make") -> Path:
    """A real installed distribution on ``site`` that registers ``entry`` in ``conductor_loop.executors``."""
    import textwrap

    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist = site / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[conductor_loop.executors]\n{entry} = {module}:{factory}\n")
    return site
