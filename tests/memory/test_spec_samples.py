"""The code samples of the product documents that need no HTTP server, run unchanged."""

import pytest

from catzilla import Catzilla
from tests.conftest import EXPECT_BUILD, run_python

BASIC = """
from catzilla import Catzilla

# Default: Use jemalloc if available, fallback to malloc
app = Catzilla(use_jemalloc=True)

print(f"Using jemalloc: {app.has_jemalloc}")
print(f"Current allocator: {app.get_allocator_info()['current_allocator']}")
"""

CHECK_FIRST = """
from catzilla import Catzilla
# Static method to check jemalloc availability
if Catzilla.jemalloc_available():
    app = Catzilla(use_jemalloc=True, memory_profiling=True)
    print("Using jemalloc with profiling")
else:
    app = Catzilla(use_jemalloc=False)
    print("Using standard malloc")
"""

EXPLICIT_MALLOC = """
from catzilla import Catzilla
# Force malloc usage (disable jemalloc)
app = Catzilla(use_jemalloc=False)
print(app.get_allocator_info()["current_allocator"])
"""

PRODUCTION = """
from catzilla import Catzilla
# Conditional production setup
jemalloc_available = Catzilla.jemalloc_available()

app = Catzilla(
    use_jemalloc=jemalloc_available,
    memory_profiling=jemalloc_available,
    auto_memory_tuning=jemalloc_available,
    production=True
)
print(app.get_allocator_info())
"""

STATS = """
from catzilla import Catzilla
app = Catzilla(use_jemalloc=True, memory_profiling=True)
stats = app.get_memory_stats()
print(stats)
"""

INFO = """
from catzilla import Catzilla
app = Catzilla(use_jemalloc=True, memory_profiling=True)
info = app.get_allocator_info()
print(info)
"""

MIGRATION = """
from catzilla import Catzilla
# Explicit control with fallback
app = Catzilla(use_jemalloc=True)  # Automatic fallback to malloc

# Check what actually happened
print(f"Using: {app.get_allocator_info()['current_allocator']}")
"""

PLATFORM = """
from catzilla import Catzilla

# Check what allocator is available
if Catzilla.jemalloc_available():
    print("Using jemalloc for optimal performance")
    app = Catzilla(use_jemalloc=True)
else:
    print("Using standard malloc - reliable performance")
    app = Catzilla(use_jemalloc=False)

# Or let Catzilla decide automatically (recommended)
app = Catzilla()  # Uses best available allocator
print(app.get_allocator_info()["current_allocator"])
"""

JE = EXPECT_BUILD != "malloc-only"
BEST = "jemalloc" if JE else "malloc"


def run(code: str) -> str:
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_basic_usage() -> None:
    assert run(BASIC) == f"Using jemalloc: {JE}\nCurrent allocator: {BEST}\n"


def test_check_availability_first() -> None:
    assert run(CHECK_FIRST) == ("Using jemalloc with profiling\n" if JE else "Using standard malloc\n")


def test_explicit_malloc() -> None:
    assert run(EXPLICIT_MALLOC) == "malloc\n"


def test_production_configuration() -> None:
    info = eval(run(PRODUCTION))  # the sample prints a dict
    assert info["current_allocator"] == BEST
    assert info["memory_profiling"] is JE and info["auto_memory_tuning"] is JE
    assert info["status"] == "initialized"


def test_memory_statistics_shape() -> None:
    stats = eval(run(STATS).replace("null", "None"))
    for key, kind in [
        ("allocator", str),
        ("jemalloc_available", bool),
        ("jemalloc_requested", bool),
        ("jemalloc_enabled", bool),
        ("allocated_mb", float),
        ("fragmentation_percent", float),
        ("profiling_enabled", bool),
    ]:
        assert isinstance(stats[key], kind), key
    assert stats["allocator"] == BEST and stats["profiling_enabled"] is True


def test_allocator_information_shape() -> None:
    info = eval(run(INFO))
    assert info == {
        "current_allocator": BEST,
        "jemalloc_available": JE,
        "jemalloc_requested": True,
        "jemalloc_enabled": JE,
        "memory_profiling": True,
        "auto_memory_tuning": True,
        "can_switch_allocator": False,
        "status": "initialized",
        "fallback_reason": info["fallback_reason"],
        "allocator_scope": "process" if JE else "app",
    }
    assert (info["fallback_reason"] is None) is JE


def test_migration_sample() -> None:
    assert run(MIGRATION) == f"Using: {BEST}\n"


def test_platform_detection_sample() -> None:
    first = "Using jemalloc for optimal performance" if JE else "Using standard malloc - reliable performance"
    assert run(PLATFORM) == f"{first}\n{BEST}\n"


@pytest.mark.skipif(not JE, reason="needs the jemalloc build")
def test_build_claims_match_the_sample_expectations() -> None:
    assert Catzilla.jemalloc_available()
