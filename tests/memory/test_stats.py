"""Statistics are real: allocations through the layer move them, exactly."""

import pytest

from catzilla import Catzilla

MIB = 1 << 20


@pytest.mark.parametrize("use_jemalloc", [True, False])
@pytest.mark.parametrize("purpose", ["request", "response", "cache", "static", "task", "general"])
def test_allocation_moves_allocated_mb_and_its_purpose(use_jemalloc: bool, purpose: str) -> None:
    app = Catzilla(use_jemalloc=use_jemalloc, auto_memory_tuning=False)
    before = app.get_memory_stats()
    block = app._memory.allocator._test_alloc(purpose, MIB, count=8)
    during = app.get_memory_stats()
    grown = during["allocated_mb"] - before["allocated_mb"]
    assert 8.0 <= grown < 8.0 * 1.01  # usable sizes: at most a page per MiB over
    arena = during["arenas"][purpose]
    assert arena["allocated_mb"] - before["arenas"][purpose]["allocated_mb"] == pytest.approx(grown)
    assert arena["allocation_count"] - before["arenas"][purpose]["allocation_count"] == 8
    assert during["peak_allocated_mb"] >= during["allocated_mb"]
    moved = [
        k
        for k, v in during["arenas"].items()
        if k != purpose and v["allocated_bytes"] != before["arenas"][k]["allocated_bytes"]
    ]
    assert moved == []
    block.free()
    after = app.get_memory_stats()
    assert after["allocated_mb"] == before["allocated_mb"]
    assert after["arenas"][purpose]["free_count"] - before["arenas"][purpose]["free_count"] == 8
    assert after["peak_allocated_mb"] >= 8.0
    app.close()


@pytest.mark.parametrize("use_jemalloc", [True, False])
def test_fragmentation_stays_within_bounds(use_jemalloc: bool) -> None:
    app = Catzilla(use_jemalloc=use_jemalloc, auto_memory_tuning=False)
    block = app._memory.allocator._test_alloc("cache", 3000, count=20000)
    block.free_every(2)  # holes everywhere
    stats = app.get_memory_stats()
    assert 0.0 <= stats["fragmentation_percent"] <= 100.0
    if app.has_jemalloc:
        # Half of every slab is free: jemalloc's own figures show it.
        assert stats["fragmentation_scope"] == "app"
        assert stats["fragmentation_percent"] > 20.0
        assert stats["resident_mb"] >= stats["allocated_mb"]
    block.free()
    assert 0.0 <= app.get_memory_stats()["fragmentation_percent"] <= 100.0
    app.close()


def test_bad_purpose_is_a_clear_error() -> None:
    app = Catzilla(use_jemalloc=False)
    with pytest.raises(ValueError, match=r"purpose must be one of .* got 'heap'"):
        app._memory.allocator._test_alloc("heap", 10)
    with pytest.raises(ValueError, match="size=0"):
        app._memory.allocator._test_alloc("cache", 0)
