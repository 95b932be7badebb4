"""The four deployment scenarios of spec 000, each in a fresh process."""

import json

import pytest

from tests.conftest import EXPECT_BUILD, run_python

REPORT = """
import json
from catzilla import Catzilla
app = Catzilla(use_jemalloc={use})
print(json.dumps({{"info": app.get_allocator_info(), "stats": app.get_memory_stats(),
                  "has": app.has_jemalloc, "use": app.use_jemalloc}}))
"""


def report(use: bool, env: dict[str, str] | None = None) -> tuple[dict, str]:
    out = run_python(REPORT.format(use=use), env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


@pytest.mark.skipif(EXPECT_BUILD == "malloc-only", reason="scenario 1 needs the jemalloc build")
def test_scenario_1_full_jemalloc() -> None:
    r, err = report(True)
    assert r["has"] is True and r["use"] is True
    assert r["info"]["current_allocator"] == "jemalloc"
    assert r["stats"]["allocator"] == "jemalloc" and r["stats"]["jemalloc_enabled"] is True
    assert r["stats"]["fallback_reason"] is None
    assert err == ""


@pytest.mark.skipif(EXPECT_BUILD == "malloc-only", reason="scenario 2 needs the jemalloc build")
def test_scenario_2_runtime_failure_falls_back() -> None:
    r, err = report(True, {"CATZILLA_TEST_JEMALLOC_INIT_FAIL": "1"})
    assert r["has"] is False and r["use"] is True
    assert r["info"]["jemalloc_available"] is True
    assert r["info"]["jemalloc_enabled"] is False
    assert r["info"]["current_allocator"] == "malloc"
    assert "jemalloc initialization failed" in r["stats"]["fallback_reason"]
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "jemalloc was requested" in lines[0] and "using malloc" in lines[0]
    assert "initialization failed" in lines[0]


@pytest.mark.skipif(EXPECT_BUILD != "malloc-only", reason="scenario 3 runs against the malloc-only build")
def test_scenario_3_malloc_only_build() -> None:
    r, err = report(True)
    assert r["has"] is False and r["use"] is True
    assert r["info"]["jemalloc_available"] is False
    assert r["info"]["current_allocator"] == "malloc"
    assert "not compiled" in r["stats"]["fallback_reason"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "jemalloc was requested" in lines[0] and "not compiled" in lines[0]


def test_scenario_4_explicit_malloc() -> None:
    r, err = report(False)
    assert r["has"] is False and r["use"] is False
    assert r["info"]["current_allocator"] == "malloc"
    assert r["stats"]["jemalloc_requested"] is False
    assert r["stats"]["fallback_reason"] is None
    assert err == ""  # nothing to explain: malloc is what was asked for


def test_explicit_malloc_ignores_the_fault_injection() -> None:
    r, err = report(False, {"CATZILLA_TEST_JEMALLOC_INIT_FAIL": "1"})
    assert r["info"]["current_allocator"] == "malloc" and err == ""


# ---- the same scenarios for mimalloc (allocator="mimalloc") ----------------------------------------

MIMALLOC_REPORT = """
import json
from catzilla import Catzilla
app = Catzilla({args})
print(json.dumps({{"info": app.get_allocator_info(), "stats": app.get_memory_stats(), "use": app.use_jemalloc}}))
"""
MIMALLOC_BUILT = EXPECT_BUILD != "malloc-only"


def mimalloc_report(args: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    out = run_python(MIMALLOC_REPORT.format(args=args), env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


@pytest.mark.skipif(not MIMALLOC_BUILT, reason="the malloc-only build has no mimalloc")
def test_mimalloc_explicit_choice() -> None:
    r, err = mimalloc_report("allocator='mimalloc'")
    assert r["info"]["current_allocator"] == r["stats"]["allocator"] == "mimalloc"
    assert r["use"] is False and r["info"]["jemalloc_enabled"] is False
    assert r["info"]["allocator_scope"] == "process" and "python" in r["stats"]["arenas"]
    assert r["stats"]["fallback_reason"] is None and err == ""


@pytest.mark.skipif(not MIMALLOC_BUILT, reason="the malloc-only build has no mimalloc")
def test_mimalloc_runtime_failure_falls_back() -> None:
    r, err = mimalloc_report("allocator='mimalloc'", {"CATZILLA_TEST_MIMALLOC_INIT_FAIL": "1"})
    assert r["info"]["current_allocator"] == "malloc"
    assert "mimalloc initialization failed" in r["stats"]["fallback_reason"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "mimalloc was requested" in lines[0] and "using malloc" in lines[0]


@pytest.mark.skipif(MIMALLOC_BUILT, reason="runs against the malloc-only build")
def test_mimalloc_not_in_the_build() -> None:
    r, err = mimalloc_report("allocator='mimalloc'")
    assert r["info"]["current_allocator"] == "malloc"
    assert "mimalloc is not compiled into this build" in r["stats"]["fallback_reason"]
    assert "mimalloc was requested" in err


@pytest.mark.skipif(not MIMALLOC_BUILT, reason="the malloc-only build has no mimalloc")
def test_mimalloc_as_the_deployment_default() -> None:
    """The app says nothing; `catzilla run --allocator mimalloc` (CATZILLA_ALLOCATOR) decides."""
    r, err = mimalloc_report("", {"CATZILLA_ALLOCATOR": "mimalloc"})
    assert r["info"]["current_allocator"] == "mimalloc" and err == ""
