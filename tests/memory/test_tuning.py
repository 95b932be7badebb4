"""auto_memory_tuning gives memory back after a spike."""

import time

import pytest

from catzilla import Catzilla
from catzilla.memory import process_rss_bytes

MIB = 1 << 20


def arena_resident_mb(app: Catzilla) -> float:
    return app.get_memory_stats()["arenas"]["cache"]["resident_mb"]


def settle(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_jemalloc_tuning_purges_after_a_spike() -> None:
    if not Catzilla.jemalloc_available():
        pytest.skip("jemalloc is not in this build")
    tuned = Catzilla(use_jemalloc=True, auto_memory_tuning=True)
    untuned = Catzilla(use_jemalloc=True, auto_memory_tuning=False)
    for app in (tuned, untuned):
        idle = app.get_memory_stats()["allocated_mb"]
        spike = app._memory.allocator._test_alloc("cache", 4096, count=16384)  # 64 MiB
        assert arena_resident_mb(app) >= 64
        spike.free()
        assert app.get_memory_stats()["allocated_mb"] == idle
    assert settle(lambda: arena_resident_mb(tuned) < 8, timeout=6.0)
    # Without tuning jemalloc keeps the dirty pages for its default 10 s decay.
    assert arena_resident_mb(untuned) > 32
    assert untuned.get_memory_stats()["dirty_mb"] > 32
    tuned.close()
    untuned.close()


def test_malloc_tuning_trims_the_heap_after_a_spike() -> None:
    rss = process_rss_bytes()
    if rss is None:
        pytest.skip("no /proc here")
    app = Catzilla(use_jemalloc=False, auto_memory_tuning=True)
    alloc = app._memory.allocator
    alloc.purge()  # start from a trimmed heap: free memory left by earlier tests would absorb the spike
    rss = process_rss_bytes() or rss
    spike = alloc._test_alloc("request", 1000, count=100_000)  # ~100 MB of small blocks
    pin = alloc._test_alloc("request", 1000)  # keeps glibc from trimming the heap top by itself
    peak = process_rss_bytes()
    assert peak is not None and peak - rss > 80 * MIB
    spike.free()
    assert settle(lambda: (process_rss_bytes() or peak) < peak - 60 * MIB, timeout=6.0)
    pin.free()
    app.close()
