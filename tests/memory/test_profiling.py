"""memory_profiling: a bounded history of samples and the trend between the last two."""

import threading
import time
from typing import Any

import pytest

from catzilla import Catzilla
from tests.conftest import run_python


def monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "catzilla-memory"]


def wait_for(pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("use_jemalloc", [True, False])
def test_trend_reports_the_change_between_the_last_two_samples(use_jemalloc: bool) -> None:
    app = Catzilla(
        use_jemalloc=use_jemalloc, memory_profiling=True, auto_memory_tuning=False, memory_stats_interval=0.1
    )
    assert app.get_memory_stats()["profiling_enabled"] is True
    assert wait_for(lambda: "memory_trend" in app.get_memory_stats())
    block = app._memory.allocator._test_alloc("cache", 1 << 20, count=4)
    seen: dict[str, Any] = {}

    def grew() -> bool:  # one read: the next sample may already have replaced this pair
        seen.update(app.get_memory_stats()["memory_trend"])
        return bool(seen["allocated_mb_change"] >= 3.9)

    assert wait_for(grew)
    trend = seen
    assert trend["direction"] == "growing"
    assert set(trend) >= {"allocated_mb_change", "fragmentation_percent_change"}
    block.free()
    assert wait_for(lambda: app.get_memory_stats()["memory_trend"]["allocated_mb_change"] <= -3.9)
    app.close()


def test_history_is_bounded() -> None:
    from catzilla import memory

    app = Catzilla(memory_profiling=True, memory_stats_interval=3600)
    for _ in range(memory.HISTORY_LIMIT + 50):
        app._memory.sample()
    assert app.get_memory_stats()["samples"] == memory.HISTORY_LIMIT
    app.close()


def test_no_profiling_no_trend() -> None:
    before = set(monitor_threads())  # other tests' apps may still be sampling
    app = Catzilla(memory_profiling=False, auto_memory_tuning=False, memory_stats_interval=0.05)
    time.sleep(0.2)
    stats = app.get_memory_stats()
    assert stats["profiling_enabled"] is False and "memory_trend" not in stats
    assert set(monitor_threads()) <= before  # this app started none


def test_sampler_stops_when_the_app_is_closed() -> None:
    before = len(monitor_threads())
    app = Catzilla(memory_profiling=True, memory_stats_interval=0.05)
    assert len(monitor_threads()) == before + 1
    app.close()
    assert len(monitor_threads()) == before
    app.close()  # idempotent


def test_sampler_stops_when_the_app_is_dropped() -> None:
    before = len(monitor_threads())
    app = Catzilla(memory_profiling=True, memory_stats_interval=0.05)
    del app
    assert wait_for(lambda: len(monitor_threads()) == before)


def test_sampler_never_keeps_the_process_alive() -> None:
    code = (
        "from catzilla import Catzilla\napp = Catzilla(memory_profiling=True, memory_stats_interval=30)\nprint('bye')"
    )
    start = time.monotonic()
    out = run_python(code, timeout=20)
    assert out.returncode == 0 and out.stdout.strip() == "bye", out.stderr
    assert time.monotonic() - start < 10
