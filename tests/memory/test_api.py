"""The Python API of spec 000: constructor, properties, info and stats dicts."""

import inspect
import math

import pytest

from catzilla import Catzilla

INFO_KEYS = {
    "current_allocator",
    "jemalloc_available",
    "jemalloc_requested",
    "jemalloc_enabled",
    "memory_profiling",
    "auto_memory_tuning",
    "can_switch_allocator",
    "status",
}
STATS_KEYS = {
    "allocator",
    "jemalloc_available",
    "jemalloc_requested",
    "jemalloc_enabled",
    "allocated_mb",
    "fragmentation_percent",
    "profiling_enabled",
    "resident_mb",
    "peak_allocated_mb",
    "allocation_count",
    "free_count",
    "arenas",
}


def test_defaults() -> None:
    params = inspect.signature(Catzilla).parameters
    assert params["use_jemalloc"].default is True
    assert params["memory_profiling"].default is False
    assert params["auto_memory_tuning"].default is True
    assert params["memory_stats_interval"].default == 60
    assert params["production"].default is False
    app = Catzilla()
    info = app.get_allocator_info()
    assert app.use_jemalloc is True
    assert info["memory_profiling"] is False and info["auto_memory_tuning"] is True
    # Catzilla() uses the best allocator available.
    assert info["current_allocator"] == ("jemalloc" if Catzilla.jemalloc_available() else "malloc")
    app.close()


def test_allocator_info_shape() -> None:
    app = Catzilla(use_jemalloc=True, memory_profiling=True)
    info = app.get_allocator_info()
    assert info.keys() >= INFO_KEYS
    assert info["can_switch_allocator"] is False
    assert info["status"] == "initialized"
    assert info["jemalloc_requested"] is True
    assert info["memory_profiling"] is True
    assert info["jemalloc_enabled"] is app.has_jemalloc
    assert info["current_allocator"] == ("jemalloc" if app.has_jemalloc else "malloc")
    assert info["jemalloc_available"] is Catzilla.jemalloc_available()
    app.close()


@pytest.mark.parametrize("use_jemalloc", [True, False])
def test_memory_stats_shape(use_jemalloc: bool) -> None:
    app = Catzilla(use_jemalloc=use_jemalloc)
    stats = app.get_memory_stats()
    assert stats.keys() >= STATS_KEYS
    assert stats["allocator"] == app.get_allocator_info()["current_allocator"]
    assert stats["jemalloc_requested"] is use_jemalloc
    assert stats["jemalloc_enabled"] is app.has_jemalloc
    assert isinstance(stats["allocated_mb"], float) and stats["allocated_mb"] >= 0
    assert 0.0 <= stats["fragmentation_percent"] <= 100.0
    assert stats["profiling_enabled"] is False
    assert set(stats["arenas"]) == {"request", "response", "cache", "static", "task", "general"}
    assert "memory_trend" not in stats
    app.close()


def test_has_jemalloc_versus_use_jemalloc() -> None:
    off = Catzilla(use_jemalloc=False)
    assert off.use_jemalloc is False and off.has_jemalloc is False
    on = Catzilla(use_jemalloc=True)
    assert on.use_jemalloc is True
    assert on.has_jemalloc is Catzilla.jemalloc_available()


def test_two_apps_in_one_process_use_different_allocators() -> None:
    a = Catzilla(use_jemalloc=True)
    b = Catzilla(use_jemalloc=False)
    assert b.get_memory_stats()["allocator"] == "malloc"
    assert a.get_memory_stats()["allocator"] == ("jemalloc" if Catzilla.jemalloc_available() else "malloc")
    block = b._memory.allocator._test_alloc("request", 1 << 20)
    assert b.get_memory_stats()["arenas"]["request"]["allocated_bytes"] >= 1 << 20
    assert a.get_memory_stats()["arenas"]["request"]["allocated_bytes"] == 0
    block.free()


def test_allocator_cannot_be_switched() -> None:
    app = Catzilla(use_jemalloc=False)
    with pytest.raises(AttributeError):
        app.use_jemalloc = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        app.has_jemalloc = True  # type: ignore[misc]
    assert app.get_allocator_info()["current_allocator"] == "malloc"


@pytest.mark.parametrize("name", ["use_jemalloc", "memory_profiling", "auto_memory_tuning", "production"])
@pytest.mark.parametrize("value", [1, "yes", None, 0.0])
def test_flags_must_be_bools(name: str, value: object) -> None:
    with pytest.raises(TypeError) as err:
        Catzilla(**{name: value})
    assert name in str(err.value) and repr(value) in str(err.value)


@pytest.mark.parametrize("value", [0, -1, -0.5, math.inf, math.nan])
def test_interval_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError) as err:
        Catzilla(memory_stats_interval=value)
    assert "memory_stats_interval" in str(err.value) and repr(value) in str(err.value)


@pytest.mark.parametrize("value", ["60", None, True, [1]])
def test_interval_must_be_a_number(value: object) -> None:
    with pytest.raises(TypeError) as err:
        Catzilla(memory_stats_interval=value)  # type: ignore[arg-type]
    assert "memory_stats_interval" in str(err.value) and repr(value) in str(err.value)


def test_interval_accepts_floats() -> None:
    app = Catzilla(memory_profiling=True, memory_stats_interval=0.25)
    assert app.get_memory_stats()["memory_stats_interval"] == 0.25
    app.close()
