"""Shared test helpers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# `make test` runs tests/memory once against the full build and once against
# the malloc-only build (CATZILLA_EXPECT_BUILD=malloc-only).
EXPECT_BUILD = os.environ.get("CATZILLA_EXPECT_BUILD", "jemalloc")


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter that sees the same catzilla build."""
    full_env = dict(os.environ)
    for name in (
        "CATZILLA_TEST_JEMALLOC_INIT_FAIL",
        "CATZILLA_TEST_MIMALLOC_INIT_FAIL",
        "CATZILLA_ALLOCATOR",
        "CATZILLA_ALLOCATOR_SCOPE",
        "CATZILLA_BYPASS_PYMALLOC",
    ):
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def jemalloc_build() -> bool:
    from catzilla import Catzilla

    return Catzilla.jemalloc_available()
