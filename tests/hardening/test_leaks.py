"""After thousands of requests of every kind, the memory layer is back at idle."""

from __future__ import annotations

import asyncio
import gc
import socket
import time

import pytest

from catzilla import Catzilla, Request
from tests.server.conftest import RawConn, serve_in_thread

KINDS = [
    b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /users/42?q=x HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /users/abc HTTP/1.1\r\nHost: x\r\n\r\n",  # 422
    b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",  # 404
    b"DELETE /json HTTP/1.1\r\nHost: x\r\n\r\n",  # 405
    b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n",  # 500
    b"GET /async HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"b" * 100000,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
]
MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"\x00garbage\r\n\r\n",
]


def make_app(use_jemalloc: bool) -> Catzilla:
    app = Catzilla(use_jemalloc=use_jemalloc, production=True, auto_memory_tuning=False)

    @app.get("/json")
    def js() -> dict:
        return {"a": [1, 2, 3], "b": "x" * 100}

    @app.get("/users/{uid}")
    def user(uid: int, q: str = "") -> dict:
        return {"uid": uid, "q": q}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/async")
    async def aio() -> dict:
        await asyncio.sleep(0)
        return {"async": True}

    @app.post("/echo")
    def echo(request: Request) -> bytes:
        return request.body

    return app


def run_mix(port: int, rounds: int) -> int:
    answered = 0
    for i in range(rounds):
        with RawConn(port) as c:  # a keep-alive connection with pipelining
            c.send(b"".join(KINDS))
            for _ in KINDS:
                c.read_response()
                answered += 1
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(MALFORMED[i % len(MALFORMED)])
            while s.recv(65536):
                pass
            answered += 1
    return answered


def allocated(app: Catzilla) -> int:
    gc.collect()  # exceptions' tracebacks keep requests alive until collected
    return app.get_memory_stats()["allocated_bytes"]


@pytest.mark.parametrize("use_jemalloc", [True, False])
def test_allocated_returns_to_idle(use_jemalloc: bool) -> None:
    app = make_app(use_jemalloc)
    with serve_in_thread(app) as srv:
        run_mix(srv.port, 3)  # warm-up: lazily made buffers exist from here on
        time.sleep(0.2)
        idle = allocated(app)
        answered = run_mix(srv.port, 300)
        assert answered == 300 * (len(KINDS) + 1)
        deadline = time.monotonic() + 5
        while allocated(app) != idle and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = app.get_memory_stats()
        assert stats["allocated_bytes"] == idle, {k: v["allocated_bytes"] for k, v in stats["arenas"].items()}
        assert stats["allocation_count"] > 3000
