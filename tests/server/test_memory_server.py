"""Memory statistics of a running app, and the spec's monitoring examples."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from catzilla import Catzilla, Request
from tests.conftest import EXPECT_BUILD
from tests.server.conftest import RawConn, serve_in_thread, start_server

KIB = 1024
BODY = 256 * KIB
CONCURRENCY = 50


def arenas(app: Catzilla) -> dict[str, dict]:
    return app.get_memory_stats()["arenas"]


class HoldApp(Catzilla):
    """Holds each POST until all CONCURRENCY are in, then reads its request arena."""

    seen: list[int]


def hold_app(use_jemalloc: bool) -> HoldApp:
    app = HoldApp(use_jemalloc=use_jemalloc)
    app.seen = []
    arrived = 0
    all_in = asyncio.Event()

    @app.post("/hold")
    async def hold(request: Request):
        nonlocal arrived
        arrived += 1
        if arrived >= CONCURRENCY:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 20)
        app.seen.append(arenas(app)["request"]["allocated_bytes"])
        return {"n": len(request.body)}

    return app


def run_burst(port: int, app: HoldApp, keep_open: list[RawConn] | None) -> int:
    """50 concurrent 256 KiB POSTs; returns the peak request-arena bytes their
    handlers saw while all 50 were held (sampled server-side, so a busy client
    machine cannot miss the peak)."""
    body = b"z" * BODY
    errors: list[BaseException] = []

    def one() -> None:
        try:
            c = RawConn(port, timeout=20)
            headers = {} if keep_open is not None else {"Connection": "close"}
            r = c.request("POST", "/hold", headers, body)
            assert r.status == 200 and r.json() == {"n": BODY}, r
            if keep_open is not None:
                keep_open.append(c)
            else:
                c.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    return max(app.seen)


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.mark.parametrize("use_jemalloc", [True, False], ids=["jemalloc", "malloc"])
def test_request_memory_rises_during_burst_and_returns(use_jemalloc: bool) -> None:
    app = hold_app(use_jemalloc)
    with serve_in_thread(app) as srv:
        time.sleep(0.3)  # readiness probe's connection gone
        before = arenas(app)
        idle = before["request"]["allocated_bytes"]
        peak = run_burst(srv.port, app, keep_open=None)
        # 50 held requests of 256 KiB: at least half of 12.5 MiB is live at the peak
        assert peak - idle > CONCURRENCY * BODY // 2, f"request arena peak {peak} vs idle {idle}"
        after = arenas(app)
        assert after["request"]["allocation_count"] > before["request"]["allocation_count"] + CONCURRENCY
        assert after["response"]["allocation_count"] > before["response"]["allocation_count"]
        assert after["task"]["allocation_count"] >= before["task"]["allocation_count"] + CONCURRENCY
        returned = wait_for(lambda: arenas(app)["request"]["allocated_bytes"] - idle <= 128 * KIB, 5)
        now = arenas(app)["request"]["allocated_bytes"]
        assert returned, f"request arena holds {now - idle} bytes more than idle after the burst"
        assert arenas(app)["response"]["allocated_bytes"] <= before["response"]["allocated_bytes"] + 128 * KIB


@pytest.mark.parametrize("use_jemalloc", [True, False], ids=["jemalloc", "malloc"])
def test_idle_keepalive_connections_release_big_request_buffers(use_jemalloc: bool) -> None:
    """cz_http.h: a buffer that grew over `retain` (16 KiB) is released 'so an
    idle keep-alive connection holds little'. After a burst of 256 KiB bodies,
    50 idle keep-alive connections may hold a few KiB each, not 256 KiB."""
    app = hold_app(use_jemalloc)
    conns: list[RawConn] = []
    try:
        with serve_in_thread(app) as srv:
            time.sleep(0.3)
            idle = arenas(app)["request"]["allocated_bytes"]
            run_burst(srv.port, app, keep_open=conns)
            assert len(conns) == CONCURRENCY
            allowance = CONCURRENCY * 40 * KIB  # connection, parser, head buffer <= retain
            released = wait_for(lambda: arenas(app)["request"]["allocated_bytes"] - idle <= allowance, 2)
            held = arenas(app)["request"]["allocated_bytes"] - idle
            assert released, (
                f"{CONCURRENCY} idle keep-alive connections hold {held} request bytes "
                f"({held // CONCURRENCY} each) after 256 KiB bodies"
            )
            for c in conns:  # the connections still work
                assert c.request("GET", "/hold").status == 405
    finally:
        for c in conns:
            c.close()


def test_stats_consistent_while_serving() -> None:
    app = Catzilla(memory_profiling=True, memory_stats_interval=0.1)

    @app.post("/echo")
    def echo(request: Request):
        return request.body

    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        for i in range(20):
            assert c.post("/echo", content=b"q" * (1000 * i)).content == b"q" * (1000 * i)
        stats = app.get_memory_stats()
        assert stats["allocated_bytes"] == sum(a["allocated_bytes"] for a in stats["arenas"].values())
        assert stats["peak_allocated_mb"] >= stats["allocated_mb"]
        assert 0 <= stats["fragmentation_percent"] <= 100
        assert wait_for(lambda: "memory_trend" in app.get_memory_stats(), 5)


# ---- the spec's examples -------------------------------------------------------------------

SPEC_EXAMPLE = """
from catzilla import Catzilla

app = Catzilla(use_jemalloc=True, memory_profiling=True, auto_memory_tuning=True, memory_stats_interval=60)

@app.get("/memory-trend")
def memory_trend():
    stats = app.get_memory_stats()
    return stats.get("memory_trend", "No trend data")

@app.get("/health")
def health():
    allocator_info = app.get_allocator_info()
    memory_stats = app.get_memory_stats()
    return {
        "status": "healthy",
        "allocator": allocator_info["current_allocator"],
        "memory_efficiency": memory_stats.get("fragmentation_percent", 0) < 10,
        "jemalloc_working": allocator_info["jemalloc_enabled"],
    }
"""


def check_health(client: httpx.Client) -> dict:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"status", "allocator", "memory_efficiency", "jemalloc_working"}
    assert body["status"] == "healthy"
    expected = "malloc" if EXPECT_BUILD == "malloc-only" else "jemalloc"
    assert body["allocator"] == expected
    assert body["jemalloc_working"] is (expected == "jemalloc")
    assert isinstance(body["memory_efficiency"], bool)
    return body


def test_spec_example_serves() -> None:
    with start_server(SPEC_EXAMPLE) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        check_health(c)
        r = c.get("/memory-trend")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"  # a returned str is a JSON string
        assert r.json() == "No trend data"  # one sample per 60 s: none yet
        check_health(c)


def test_spec_example_memory_trend_with_short_interval() -> None:
    code = SPEC_EXAMPLE.replace("memory_stats_interval=60", "memory_stats_interval=0.2")
    with start_server(code) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        assert wait_for(lambda: isinstance(c.get("/memory-trend").json(), dict), 5)
        trend = c.get("/memory-trend").json()
        assert set(trend) >= {
            "allocated_mb_change",
            "fragmentation_percent_change",
            "resident_mb_change",
            "seconds",
            "direction",
            "samples",
        }
        assert trend["direction"] in ("growing", "shrinking", "stable")
        assert trend["samples"] >= 2 and 0.1 < trend["seconds"] < 5
        check_health(c)


def test_spec_health_reports_idle_serving_app_as_memory_efficient() -> None:
    """docs/memory.md: the fragmentation denominator is at least 1 MiB so that
    'a small app reads near 0'. The spec's /health calls an app efficient
    below 10 %: an idle two-route app that served one request must be."""
    with start_server(SPEC_EXAMPLE) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        body = check_health(c)
        assert body["memory_efficiency"] is True, "an idle two-route app reports >= 10 % fragmentation"
