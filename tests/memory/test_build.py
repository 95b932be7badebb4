"""The build variant under test is the one `make test` says it built."""

import json
import subprocess
import sys

from catzilla import Catzilla, _core
from tests.conftest import EXPECT_BUILD


def test_build_variant_is_the_expected_one() -> None:
    info = _core.build_info()
    if EXPECT_BUILD == "malloc-only":
        assert Catzilla.jemalloc_available() is False
        assert Catzilla.get_available_allocators() == ["malloc"]
        assert info["jemalloc_compiled"] is False
        assert info["use_jemalloc_option"] is False
        assert info["mimalloc_compiled"] is False
    else:
        assert Catzilla.jemalloc_available() is True
        assert Catzilla.get_available_allocators() == ["malloc", "jemalloc", "mimalloc"]
        assert info["mimalloc_compiled"] is True and info["mimalloc_version"] == "2.0.9"
        assert info["jemalloc_version"].startswith("5.3.0")
        assert info["jemalloc_prefix"] == "je_"
        assert "initial-exec" in info["jemalloc_tls_model"]


def test_extension_exports_only_its_init_function() -> None:
    """And the entry point of catzilla/_python (csrc/launcher): nothing of jemalloc's, mimalloc's or libuv's."""
    nm = subprocess.run(["nm", "-D", "--defined-only", _core.__file__], capture_output=True, text=True)
    assert nm.returncode == 0, nm.stderr
    names = [line.split()[-1] for line in nm.stdout.splitlines() if line.strip()]
    assert sorted(names) == ["PyInit__core", "catzilla_process_heap_preinit"]


def test_diagnose_tells_the_truth_about_the_build() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "catzilla", "diagnose", "--json"], capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert report["build"]["jemalloc_compiled"] is Catzilla.jemalloc_available()
    assert report["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    je = report["allocators"]["jemalloc"]
    assert je["in_use"] == ("jemalloc" if Catzilla.jemalloc_available() else "malloc")
    assert je["works"] is True
    assert report["allocators"]["malloc"] == {
        "requested": "malloc",
        "in_use": "malloc",
        "works": True,
        "fallback_reason": None,
    }
    text = subprocess.run(
        [sys.executable, "-m", "catzilla", "diagnose"], capture_output=True, text=True, check=True
    ).stdout
    assert "platform:" in text and "python:" in text
    if Catzilla.jemalloc_available():
        assert "compiled in" in text and "symbol prefix:   je_" in text and "OK, in use" in text
    else:
        assert "not compiled in" in text


def test_diagnose_reports_runtime_failure() -> None:
    import os

    env = dict(os.environ, CATZILLA_TEST_JEMALLOC_INIT_FAIL="1")
    out = subprocess.run(
        [sys.executable, "-m", "catzilla", "diagnose", "--json"], env=env, capture_output=True, text=True, check=True
    )
    je = json.loads(out.stdout)["allocators"]["jemalloc"]
    assert je["in_use"] == "malloc"
    assert je["fallback_reason"]
