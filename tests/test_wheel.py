"""Build the abi3 manylinux wheel with maturin, install it into a fresh venv, use it."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    maturin = VENV_BIN / "maturin"
    if not maturin.exists():
        pytest.skip("maturin is not installed in this venv")
    dist = tmp_path / "dist"
    env = {**os.environ, "PYO3_PYTHON": sys.executable}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [str(maturin), "build", "--release", "-q", "-o", str(dist), "--interpreter", sys.executable],
        cwd=REPO,
        env=env,
        check=True,
        timeout=540,
    )
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert "abi3" in wheel.name, wheel.name
    assert "manylinux" in wheel.name, wheel.name

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    sample = tmp_path / "sample.txt"
    sample.write_bytes(b"conductor-loop wheel check\n")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(
        [
            str(py),
            "-c",
            "import sys, conductor_loop._core as c; "
            "print(c.__file__); print(c.sha256_file(sys.argv[1])[0])",
            str(sample),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env,
        timeout=60,
    )
    where, digest = out.stdout.split()
    assert where.startswith(str(venv)), where  # the installed copy, not the source tree
    assert digest == hashlib.sha256(sample.read_bytes()).hexdigest()

    if (REPO / "python" / "conductor_loop" / "cli" / "__init__.py").exists():
        ver = subprocess.run(
            [str(venv / "bin" / "conductor-loop"), "--version"],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=clean_env,
            timeout=60,
        )
        m = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
        assert m is not None
        assert m.group(1) in ver.stdout + ver.stderr
