"""Async handlers: concurrency, and sync requests not blocked by sleeping async ones."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from catzilla import Catzilla
from tests.server.conftest import RawConn, ServerProcess, serve_in_thread

N = 200


async def fetch(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        return status, body
    finally:
        writer.close()


async def burst(port: int, path: str, n: int) -> tuple[float, list[tuple[int, bytes]]]:
    t0 = time.perf_counter()
    results = await asyncio.wait_for(asyncio.gather(*(fetch(port, path) for _ in range(n))), 30)
    return time.perf_counter() - t0, results


def test_200_concurrent_async_requests(main_server: ServerProcess) -> None:
    asyncio.run(burst(main_server.port, "/slow?delay=0.01", 10))  # warm up the asyncio thread
    elapsed, results = asyncio.run(burst(main_server.port, "/slow", N))
    assert len(results) == N
    assert all(status == 200 and body == b'{"slept":0.5}' for status, body in results)
    # serially this would take 100 s; concurrently a little over 0.5 s
    assert elapsed < 1.5, f"{N} concurrent 0.5 s async requests took {elapsed:.2f}s"


def test_slow_async_does_not_block_sync(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as slow, RawConn(main_server.port) as fast:
        t0 = time.monotonic()
        slow.send(b"GET /slow?delay=1.0 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.05)
        r = fast.request("GET", "/sync-quick")
        fast_done = time.monotonic() - t0
        assert r.json() == {"sync": True}
        assert not slow.has_data(), "the slow request finished before the sync one was answered"
        assert fast_done < 0.8, f"sync request took {fast_done:.2f}s while an async one slept"
        # also on the same server, many sync requests while it sleeps
        for _ in range(20):
            assert fast.request("GET", "/users/1").status == 200
        assert not slow.has_data()
        rs = slow.read_response(timeout=5)
        slow_done = time.monotonic() - t0
    assert rs.json() == {"slept": 1.0}
    assert slow_done >= 0.95


def test_many_async_on_one_keepalive_connection(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        for i in range(50):
            r = c.request("GET", f"/async-json?i={i}")
            assert r.status == 200 and r.json() == {"async": True, "path": "/async-json"}


@pytest.mark.parametrize("loop", ["auto", "asyncio", "uvloop"])
def test_the_event_loop_async_handlers_run_on(loop: str) -> None:
    """uvicorn's choice: "auto" is uvloop when installed, else asyncio's loop."""
    try:
        import uvloop  # noqa: F401

        has_uvloop = True
    except ImportError:
        has_uvloop = False
    if loop == "uvloop" and not has_uvloop:
        with pytest.raises(ValueError, match="needs uvloop"):
            Catzilla(loop=loop)
        return
    app = Catzilla(loop=loop)

    @app.get("/loop")
    async def which() -> dict[str, str]:
        await asyncio.sleep(0)
        return {"module": type(asyncio.get_running_loop()).__module__}

    with serve_in_thread(app) as srv, RawConn(srv.port, timeout=5) as c:
        module = c.request("GET", "/loop").json()["module"]
    uses_uvloop = loop == "uvloop" or (loop == "auto" and has_uvloop)
    assert module.startswith("uvloop") is uses_uvloop, module


def test_a_bad_loop_is_named() -> None:
    with pytest.raises(ValueError, match="loop must be one of auto, asyncio, uvloop, got 'trio'"):
        Catzilla(loop="trio")


@pytest.mark.parametrize("loop", ["asyncio", "auto"])
def test_one_thread_serves_and_runs_the_loop(loop: str) -> None:
    """While serving, the asyncio loop runs on the serving thread: async and
    sync handlers run on that one thread (no hand-off between threads per
    request), on the loop the lifespan started on (a pool made at startup is
    usable in handlers)."""
    seen: dict[str, object] = {}

    async def startup() -> None:
        seen["loop"] = asyncio.get_running_loop()
        seen["queue"] = asyncio.Queue()

    app = Catzilla(loop=loop, on_startup=[startup])

    @app.get("/sync")
    def sync_thread() -> dict[str, int]:
        return {"thread": threading.get_ident()}

    @app.get("/async")
    async def async_thread() -> dict[str, object]:
        queue = seen["queue"]
        assert isinstance(queue, asyncio.Queue)
        await queue.put(1)  # bound to the startup loop: fails on any other
        await asyncio.sleep(0)
        return {
            "thread": threading.get_ident(),
            "same_loop": asyncio.get_running_loop() is seen["loop"],
            "got": await queue.get(),
        }

    with serve_in_thread(app) as srv, RawConn(srv.port, timeout=5) as c:
        for _ in range(3):
            sync, async_ = c.request("GET", "/sync").json(), c.request("GET", "/async").json()
            assert sync["thread"] == srv.thread.ident
            assert async_ == {"thread": srv.thread.ident, "same_loop": True, "got": 1}


def test_a_sync_handler_may_run_its_own_event_loop() -> None:
    """Sync handlers see no running loop, as on any other thread: asyncio.run()
    inside one works while async handlers run on the serving thread's loop."""
    app = Catzilla()

    async def compute() -> int:
        await asyncio.sleep(0)
        return 42

    @app.get("/run")
    def run_own() -> dict[str, int]:
        return {"got": asyncio.run(compute())}

    @app.get("/async")
    async def async_ok() -> dict[str, bool]:
        await asyncio.sleep(0.01)
        return {"ok": True}

    with serve_in_thread(app) as srv, RawConn(srv.port, timeout=5) as c:
        for _ in range(3):
            assert c.request("GET", "/async").json() == {"ok": True}
            assert c.request("GET", "/run").json() == {"got": 42}
