"""Async handlers: concurrency, and sync requests not blocked by sleeping async ones."""

from __future__ import annotations

import asyncio
import time

from tests.server.conftest import RawConn, ServerProcess

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
