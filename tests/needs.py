"""Tests that need a real outside tool: skip without it locally, fail without it in CI (``CI=true``)."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """True when running under ``.ci/run`` (``CI=true``), where every tool a test needs must be installed."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Fail the test in CI, skip it elsewhere, because a real part it needs is not there."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)")
    pytest.skip(reason)


def need_tool(name: str, hint: str) -> str:
    """The path of executable ``name`` on PATH; skips or fails (see :func:`missing`) when it is absent."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not installed ({hint})")
        raise AssertionError("unreachable")
    return path
