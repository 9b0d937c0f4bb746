"""The distributions operators install: the manylinux2014 wheel and the sdist, each built once per session.

The wheel is built like ``make wheel`` (maturin with the zig linker, ``--compatibility manylinux2014``),
checked with ``auditwheel show`` and ``objdump -T`` (no symbol needs a glibc newer than 2.17), installed
into a clean venv and used for a once-run on a small handoff with the built-in porch.  The sdist is
built like ``make sdist`` and installed with pip, which compiles the Rust core from source.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import write_intent
from needs import missing, need_tool

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
GLIBC_MAX = (2, 17)
INTENTS = 4

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def _build_env() -> dict[str, str]:
    """The environment for maturin: this venv's bin first (maturin finds zig as ``python3 -m ziglang``)."""
    env = {**os.environ, "PYO3_PYTHON": sys.executable, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    return env


def _maturin() -> Path:
    maturin = VENV_BIN / "maturin"
    if not maturin.exists():
        missing("maturin is not installed in this venv (make install)")
    return maturin


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYO3_PYTHON")}


def _fresh_venv(where: Path, dist: Path, timeout: float, extra_env: dict[str, str] | None = None) -> Path:
    """A new venv at ``where`` with ``dist`` (a wheel or an sdist) pip-installed; returns its bin dir."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    proc = subprocess.run(
        [str(where / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(dist)],
        capture_output=True, text=True, timeout=timeout, cwd=where.parent,
        env={**_clean_env(), **(extra_env or {})}, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return where / "bin"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manylinux2014 wheel, built once per session exactly as ``make wheel`` does."""
    maturin = _maturin()
    try:
        import ziglang  # noqa: F401  (maturin runs it as `python3 -m ziglang`)
    except ImportError:
        missing("ziglang is not installed in this venv (requirements-dev.txt)")
    dist = tmp_path_factory.mktemp("wheel-dist")
    proc = subprocess.run(
        [str(maturin), "build", "--release", "-q", "--zig", "--compatibility", "manylinux2014",
         "-o", str(dist), "--interpreter", sys.executable],
        cwd=REPO, env=_build_env(), capture_output=True, text=True, timeout=1500, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="session")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source distribution, built once per session exactly as ``make sdist`` does."""
    dist = tmp_path_factory.mktemp("sdist-dist")
    proc = subprocess.run([str(_maturin()), "sdist", "-o", str(dist)], cwd=REPO, env=_build_env(),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sdists = list(dist.glob("conductor_loop-*.tar.gz"))
    assert len(sdists) == 1, sdists
    return sdists[0]


def _glibc_versions(text: str) -> set[tuple[int, ...]]:
    return {tuple(int(p) for p in m.split(".")) for m in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", text)}


def _once_run(bin_dir: Path, tmp: Path) -> None:
    """``conductor-loop run --once`` from the installed copy on a small handoff: every intent filed."""
    handoff, out = tmp / "handoff", tmp / "out"
    handoff.mkdir()
    for i in range(INTENTS):
        write_intent(handoff, f"intent-{i}.json", target=f"odu-{i}")
    env = _clean_env()
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import conductor_loop._core as c; print(c.__file__)"],
        capture_output=True, text=True, cwd=tmp, env=env, timeout=120, check=True,
    )
    assert where.stdout.strip().startswith(str(bin_dir.parent)), where.stdout  # not the source tree
    version = subprocess.run([str(bin_dir / "conductor-loop"), "--version"], capture_output=True, text=True,
                             cwd=tmp, env=env, timeout=120, check=True)
    m = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert m is not None and m.group(1) in version.stdout + version.stderr
    run = subprocess.run(
        [str(bin_dir / "conductor-loop"), "run", "--once", "--handoff", str(handoff), "--out", str(out)],
        capture_output=True, text=True, cwd=tmp, env=env, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"processed {INTENTS}, skipped 0, failed 0" in run.stdout, run.stdout
    assert sorted(p.name for p in (handoff / "processed").iterdir()) == [f"intent-{i}.json" for i in range(INTENTS)]
    assert not list(handoff.glob("intent-*.json"))
    for i in range(INTENTS):
        doc = json.loads((handoff / "status" / f"intent-{i}.json.status").read_text())
        assert doc["status"] == "success", doc
    assert list(out.rglob("Kptfile")), "the built-in porch wrote no package"


def test_wheel_is_manylinux2014(wheel: Path) -> None:
    assert "abi3" in wheel.name and "manylinux2014_x86_64" in wheel.name, wheel.name
    assert "manylinux_2_17_x86_64" in wheel.name, wheel.name
    auditwheel = str(VENV_BIN / "auditwheel")
    if not Path(auditwheel).exists():
        missing("auditwheel is not installed in this venv (requirements-dev.txt)")
    proc = subprocess.run([auditwheel, "show", "--json", str(wheel)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["overall_tag"] == "manylinux_2_17_x86_64", report
    assert report["external_libs"] == {}, report  # nothing to vendor: only the glibc family is linked
    symbols = " ".join(v for versions in report["versioned_symbols"].values() for v in versions)
    assert _glibc_versions(symbols), report
    assert max(_glibc_versions(symbols)) <= GLIBC_MAX, report["versioned_symbols"]


def test_wheel_symbols_need_glibc_2_17_at_most(wheel: Path, tmp_path: Path) -> None:
    objdump = need_tool("objdump", "apt-get install binutils")
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".so")]
        assert names == ["conductor_loop/_core.abi3.so"], names
        so = Path(zf.extract(names[0], tmp_path))
    proc = subprocess.run([objdump, "-T", str(so)], capture_output=True, text=True, timeout=120, check=True)
    versions = _glibc_versions(proc.stdout)
    assert versions, proc.stdout[:2000]
    too_new = sorted(line for line in proc.stdout.splitlines() if max(_glibc_versions(line), default=(0,)) > GLIBC_MAX)
    assert not too_new, too_new


def test_wheel_installs_and_runs_once(wheel: Path, tmp_path: Path) -> None:
    bin_dir = _fresh_venv(tmp_path / "venv", wheel, timeout=600)
    _once_run(bin_dir, tmp_path)


def _forget_own_build(target: Path) -> None:
    """Drop the crate's own build (not its dependencies') from a warm target dir.

    An sdist's files all carry one fixed old mtime, so cargo would take an earlier session's build of
    the crate for fresh and install it: a changed Rust core would go untested.
    """
    for profile in target.glob("*/"):
        own = (".fingerprint/conductor-loop-core-*", "build/conductor-loop-core-*", "deps/_core[.-]*",
               "deps/lib_core[.-]*")
        for stale in [p for pattern in own for p in profile.glob(pattern)]:
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def test_sdist_builds_from_source_and_runs_once(sdist: Path, tmp_path: Path) -> None:
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for needed in ("pyproject.toml", "Cargo.toml", "Cargo.lock", "rust/lib.rs",
                   "python/conductor_loop/schema/intent.schema.json"):
        assert needed in names, needed
    need_tool("cargo", "a Rust toolchain: https://rustup.rs")
    # pip compiles the Rust core in an isolated build; a target dir under target/ keeps later sessions warm.
    target = REPO / "target" / "sdist-test"
    _forget_own_build(target)
    warm = {"CARGO_TARGET_DIR": str(target)}
    bin_dir = _fresh_venv(tmp_path / "venv", sdist, timeout=1800, extra_env=warm)
    _once_run(bin_dir, tmp_path)
