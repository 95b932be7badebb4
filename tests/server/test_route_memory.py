"""Memory per route (``route_memory``): what the C core allocates for each
request, attributed to its route, in get_memory_stats()["routes"] and in
/metrics; and the fragmentation figure a malloc app reports after traffic."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from catzilla import Catzilla, Request, Response, StreamingResponse
from tests.conftest import EXPECT_BUILD
from tests.server.conftest import serve_in_thread, start_server

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client (scripts/requirements-dev.txt)")

BIG = 300_000  # a response body
UPLOAD = 1_000_000  # a request body
N = 5
ALLOCATORS = ["malloc"] if EXPECT_BUILD == "malloc-only" else ["malloc", "jemalloc"]
PURPOSES = {"request", "response", "cache", "static", "task", "general"}


def routes_app(**options) -> Catzilla:
    app = Catzilla(**options)

    @app.get("/small")
    def small():
        return {"ok": True}

    @app.get("/big/{n}")
    def big(n: int):
        return Response(b"b" * n, media_type="application/octet-stream")

    @app.post("/upload")
    def upload(request: Request):
        return {"n": len(request.body)}

    @app.get("/later")
    async def later():
        await asyncio.sleep(0.01)
        return Response(b"l" * BIG, media_type="application/octet-stream")

    return app


def drive(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        for _ in range(N):
            assert c.get("/small").json() == {"ok": True}
            assert len(c.get(f"/big/{BIG}").content) == BIG
            assert c.post("/upload", content=b"u" * UPLOAD).json() == {"n": UPLOAD}
            assert len(c.get("/later").content) == BIG


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_routes_report_bytes_per_request_and_peak(allocator: str) -> None:
    app = routes_app(allocator=allocator, route_memory=True)
    with serve_in_thread(app) as srv:
        drive(srv.base_url)
        stats = app.get_memory_stats()
    routes = stats["routes"]
    # the interpreter's share is a purpose when the app holds its memory (process scope)
    purposes = PURPOSES | ({"python"} if stats["allocator_scope"] == "process" else set())
    # keyed as /metrics labels routes: method and template
    assert {"GET /small", "GET /big/{n}", "POST /upload", "GET /later"} <= set(routes)
    for key in ("GET /small", "GET /big/{n}", "POST /upload", "GET /later"):
        r = routes[key]
        assert r["requests"] == N, (key, r)
        assert set(r["purposes"]) == purposes
        assert r["allocated_bytes"] == sum(p["allocated_bytes"] for p in r["purposes"].values())
        assert r["allocated_bytes_per_request"] == pytest.approx(r["allocated_bytes"] / N)
        assert r["method"] + " " + r["route"] == key
    big, upload, later, small = (
        routes["GET /big/{n}"],
        routes["POST /upload"],
        routes["GET /later"],
        routes["GET /small"],
    )
    # the answer is queued in response buffers; a body read whole in request buffers
    assert big["purposes"]["response"]["allocated_bytes_per_request"] >= BIG
    assert big["peak_in_flight_bytes"] >= BIG
    assert upload["purposes"]["request"]["allocated_bytes_per_request"] >= UPLOAD
    assert upload["peak_in_flight_bytes"] >= UPLOAD
    # an async handler's answer is rendered on the loop thread: counted too
    assert later["purposes"]["response"]["allocated_bytes_per_request"] >= BIG
    # hello-sized requests reuse the connection's buffers
    assert small["allocated_bytes_per_request"] < 64 * 1024
    assert small["peak_in_flight_bytes"] < 64 * 1024


def test_route_memory_follows_metrics_unless_set() -> None:
    for options, on in [
        ({}, False),
        ({"metrics": True}, True),
        ({"metrics": True, "route_memory": False}, False),
        ({"route_memory": True}, True),
    ]:
        app = routes_app(**options)
        assert app.route_memory_enabled is on
        with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as c:
            assert c.get("/small").status_code == 200
            routes = app.get_memory_stats()["routes"]
        assert (routes.get("GET /small", {}).get("requests") == 1) is on, (options, routes)
        if not on:
            assert routes == {}
    with pytest.raises(TypeError):
        Catzilla(route_memory="yes")  # type: ignore[arg-type]


def test_route_memory_in_prometheus_metrics() -> None:
    app = routes_app(metrics=True)
    with serve_in_thread(app) as srv:
        drive(srv.base_url)
        text = httpx.get(f"{srv.base_url}/metrics").text
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}

    def value(family: str, name: str, **labels: str) -> float:
        for s in fams[family].samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                assert s.labels["worker"] == "0"
                return s.value
        raise KeyError(f"{name}{labels}")

    alloc = "catzilla_route_allocated_bytes"
    assert fams[alloc].type == "counter"
    total = value(alloc, alloc + "_total", route="/big/{n}", method="GET", purpose="response")
    assert total >= N * BIG
    assert value(alloc, alloc + "_total", route="/upload", method="POST", purpose="request") >= N * UPLOAD
    assert value("catzilla_route_memory_requests", "catzilla_route_memory_requests_total", route="/big/{n}") == N
    peak = "catzilla_route_peak_in_flight_bytes"
    assert fams[peak].type == "gauge"
    assert value(peak, peak, route="/upload", method="POST") >= UPLOAD
    # the same figures as get_memory_stats()
    routes = app.get_memory_stats()["routes"]
    assert total == routes["GET /big/{n}"]["purposes"]["response"]["allocated_bytes"]


def test_route_memory_not_in_metrics_when_off() -> None:
    app = routes_app(metrics=True, route_memory=False)
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as c:
        assert c.get("/small").status_code == 200
        text = c.get("/metrics").text
    assert "catzilla_requests_total" in text
    assert "catzilla_route_allocated_bytes" not in text


def test_concurrent_requests_are_attributed_to_their_own_route() -> None:
    """Big and small requests interleaved on many connections: the small
    route's figures stay small (each connection's tally is its own)."""
    app = routes_app(route_memory=True)
    errors: list[BaseException] = []
    with serve_in_thread(app) as srv:

        def client(path: str) -> None:
            try:
                with httpx.Client(base_url=srv.base_url, timeout=20) as c:
                    for _ in range(10):
                        assert c.get(path).status_code == 200
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=client, args=(p,)) for p in ["/small", f"/big/{BIG}", "/later"] * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        routes = app.get_memory_stats()["routes"]
    assert not errors, errors[0]
    assert routes["GET /small"]["requests"] == 40
    assert routes["GET /small"]["allocated_bytes_per_request"] < 64 * 1024
    assert routes["GET /big/{n}"]["allocated_bytes_per_request"] >= BIG
    assert routes["GET /later"]["allocated_bytes_per_request"] >= BIG


PIECE = 64 * 1024


def test_streams_and_abandoned_requests() -> None:
    """Streams (sync and async) count their pieces; a request whose client
    leaves is not reported, and its connection's tally goes with it."""
    app = Catzilla(route_memory=True)

    @app.get("/sync-stream")
    def sync_stream():
        return StreamingResponse((b"s" * PIECE for _ in range(8)), media_type="application/octet-stream")

    @app.get("/async-stream")
    async def async_stream():
        async def pieces():
            for _ in range(8):
                yield b"a" * PIECE

        return StreamingResponse(pieces(), media_type="application/octet-stream")

    @app.get("/slow")
    async def slow():
        await asyncio.sleep(2)
        return {"late": True}

    with serve_in_thread(app) as srv:
        for _ in range(3):
            with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=srv.base_url, timeout=0.2) as c:
                c.get("/slow")
        with httpx.Client(base_url=srv.base_url, timeout=10) as c:
            for _ in range(N):
                assert len(c.get("/sync-stream").content) == 8 * PIECE
                assert len(c.get("/async-stream").content) == 8 * PIECE
        routes = app.get_memory_stats()["routes"]
    assert "GET /slow" not in routes
    for key in ("GET /sync-stream", "GET /async-stream"):
        assert routes[key]["requests"] == N
        assert routes[key]["purposes"]["response"]["allocated_bytes_per_request"] >= PIECE, routes[key]


PYTHON_SHARE = """
from catzilla import Catzilla

app = Catzilla(allocator="ALLOCATOR", route_memory=True)

@app.get("/build")
def build():
    blob = bytearray(400_000)  # over pymalloc's 512 bytes: from the interpreter's raw allocator
    return {"n": len(blob)}

@app.get("/small")
def small():
    return {"ok": True}

@app.get("/stats")
def stats():
    s = app.get_memory_stats()
    return {"scope": s["allocator_scope"], "routes": s["routes"]}
"""


@pytest.mark.skipif(EXPECT_BUILD == "malloc-only", reason="process scope needs jemalloc or mimalloc")
@pytest.mark.parametrize("allocator", ["jemalloc", "mimalloc"])
def test_python_share_under_process_scope(allocator: str) -> None:
    code = PYTHON_SHARE.replace("ALLOCATOR", allocator)
    with start_server(code) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        for _ in range(N):
            assert c.get("/build").json() == {"n": 400_000}
            assert c.get("/small").json() == {"ok": True}
        body = c.get("/stats").json()
    assert body["scope"] == "process"
    build, small = body["routes"]["GET /build"], body["routes"]["GET /small"]
    assert set(build["purposes"]) == PURPOSES | {"python"}
    assert build["purposes"]["python"]["allocated_bytes_per_request"] >= 400_000
    assert small["purposes"]["python"]["allocated_bytes_per_request"] < 400_000
    assert build["allocated_bytes"] == sum(p["allocated_bytes"] for p in build["purposes"].values())


def test_no_python_share_under_app_scope() -> None:
    code = PYTHON_SHARE.replace("ALLOCATOR", "malloc")
    with start_server(code) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        assert c.get("/build").status_code == 200
        body = c.get("/stats").json()
    assert body["scope"] == "app"
    assert set(body["routes"]["GET /build"]["purposes"]) == PURPOSES


# ---- the spec's /health under malloc ------------------------------------------------------

HEALTH_AFTER_TRAFFIC = """
from catzilla import Catzilla, Response

app = Catzilla(use_jemalloc=False, memory_profiling=True, auto_memory_tuning=True)
cache = {}

@app.get("/churn/{i}")
def churn(i: int):
    # Python objects of many sizes replacing each other: glibc's heap keeps free chunks
    cache[i % 64] = ["x" * (i * 37 % 5000) for _ in range(i % 50)]
    return {"i": i, "held": len(cache)}

@app.get("/blob/{n}")
def blob(n: int):
    return Response(b"b" * n)

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

@app.get("/stats")
def stats():
    s = app.get_memory_stats()
    return {k: s[k] for k in ("fragmentation_percent", "fragmentation_scope", "process_fragmentation_percent",
                              "allocator")}
"""


def test_malloc_app_reads_memory_efficient_after_traffic() -> None:
    """docs/memory.md: under malloc the figure is the app's own; glibc's free
    bytes (every caller's) are process_fragmentation_percent."""
    with start_server(HEALTH_AFTER_TRAFFIC) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        for i in range(1500):
            assert c.get(f"/churn/{i}").status_code == 200
            if i % 10 == 0:
                assert len(c.get(f"/blob/{(i * 7919) % 400_000 + 1}").content) > 0
        body = c.get("/health").json()
        stats = c.get("/stats").json()
    assert body == {"status": "healthy", "allocator": "malloc", "memory_efficiency": True, "jemalloc_working": False}
    assert stats["allocator"] == "malloc" and stats["fragmentation_scope"] == "app"
    assert stats["fragmentation_percent"] < 10
    glibc = stats["process_fragmentation_percent"]
    assert glibc is None or 0.0 <= glibc <= 100.0
