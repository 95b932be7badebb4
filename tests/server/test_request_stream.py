"""Request bodies read as they arrive: ``async for chunk in request.stream()``
gets the body piece by piece while the client sends it, the client is not read
while the handler holds a piece (backpressure), a route's ``max_body_size``
cuts a chunked body with 413 as it passes, and a client that leaves mid-body
cancels the handler. Real sockets, real clients."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx

from catzilla import Catzilla, ClientDisconnect, Request
from tests.server.conftest import HOST, RawConn, serve_in_thread

BIG = 1 << 40  # a route that streams may take what it likes


class Gate:
    """Lets a test hold a handler (on the asyncio thread) and let it go."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.events: list[str] = []

    async def wait(self) -> None:
        while not self.opened.is_set():
            await asyncio.sleep(0.01)


def build(gate: Gate) -> Catzilla:
    app = Catzilla()

    @app.post("/digest", max_body_size=BIG)
    async def digest(request: Request) -> dict[str, object]:
        h = hashlib.sha256()
        pieces = 0
        async for chunk in request.stream():
            h.update(chunk)
            pieces += 1
        return {"sha256": h.hexdigest(), "pieces": pieces}

    @app.post("/slow", max_body_size=BIG)
    async def slow(request: Request) -> dict[str, int]:
        total = 0
        async for chunk in request.stream():
            if total == 0:
                gate.events.append("first")
                await gate.wait()  # holds the first piece: the client must stall
            total += len(chunk)
        return {"size": total}

    @app.post("/limited", max_body_size=100_000)
    async def limited(request: Request) -> dict[str, int]:
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
        except ClientDisconnect as e:  # or cancelled, once the 413 went out and the connection closed
            gate.events.append(f"cut {e.status_code} after {total}")
            raise
        except asyncio.CancelledError:
            gate.events.append(f"cut cancelled after {total}")
            raise
        gate.events.append("whole")
        return {"size": total}

    @app.post("/leave", max_body_size=BIG)
    async def leave(request: Request) -> dict[str, int]:
        try:
            async for _ in request.stream():
                gate.events.append("piece")
        except asyncio.CancelledError:
            gate.events.append("cancelled")
            raise
        except ClientDisconnect:  # the other documented outcome: its next read says the client left
            gate.events.append("disconnected")
            raise
        return {"ok": 1}

    @app.post("/early", max_body_size=BIG)
    async def early(request: Request) -> dict[str, str]:
        async for _ in request.stream():
            break
        return {"answered": "before the body's end"}

    @app.post("/whole", max_body_size=BIG)
    async def whole(request: Request) -> dict[str, object]:
        stream = request.stream()  # names stream(): the body arrives as a stream
        assert stream is not None
        body = await request.body()
        again = await request.body()
        return {"size": len(body), "same": body == again, "json": (await request.json()) if body[:1] == b"{" else None}

    @app.post("/sync")
    def sync(request: Request) -> dict[str, object]:
        return {"size": len(request.body), "pieces": [len(c) for c in request.stream()]}

    @app.post("/form", max_body_size=BIG)
    async def form(request: Request) -> dict[str, object]:
        if request.headers.get("x-stream"):
            return {"pieces": [len(c) async for c in request.stream()]}
        f = await request.form()
        return {"a": f["a"], "b": f.getlist("b")}

    return app


def pieces(n: int, size: int) -> Iterator[bytes]:
    for i in range(n):
        yield bytes([65 + i % 26]) * size


def test_async_stream_reads_the_body_as_it_arrives() -> None:
    gate = Gate()
    with serve_in_thread(build(gate)) as srv, httpx.Client(base_url=srv.base_url, timeout=20) as c:
        # chunked, 16 MiB: many pieces, every byte in order
        expected = hashlib.sha256(b"".join(pieces(256, 65536))).hexdigest()
        r = c.post("/digest", content=pieces(256, 65536))
        assert r.status_code == 200
        assert r.json()["sha256"] == expected
        assert r.json()["pieces"] > 16  # not read whole first
        # Content-Length, 8 MiB
        body = b"z" * (8 << 20)
        r = c.post("/digest", content=body)
        assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()
        # a small body that came with its head: one piece, then the end
        assert c.post("/digest", content=b"abc").json() == {"sha256": hashlib.sha256(b"abc").hexdigest(), "pieces": 2}
        # empty
        assert c.post("/digest", content=b"").json()["sha256"] == hashlib.sha256(b"").hexdigest()
        # the connection is kept alive across streamed bodies
        assert c.post("/digest", content=pieces(4, 10)).status_code == 200


def test_a_handler_that_holds_a_piece_stalls_the_client() -> None:
    gate = Gate()
    with serve_in_thread(build(gate)) as srv:
        s = socket.create_connection((HOST, srv.port), timeout=5)
        total = 256 << 20
        s.sendall(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
        s.setblocking(False)
        chunk = b"x" * 65536
        sent = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and sent < total:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        assert "first" in gate.events
        # only the socket buffers and one piece: far from the whole body
        assert sent < 64 << 20, f"{sent} bytes went in while the handler held its first piece"
        gate.opened.set()
        s.setblocking(True)
        s.settimeout(30)
        while sent < total:
            sent += s.send(chunk[: min(len(chunk), total - sent)])
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            more = s.recv(65536)
            assert more, data
            data += more
        assert data.startswith(b"HTTP/1.1 200 ")
        assert data.endswith(b'{"size":%d}' % total)
        s.close()


def test_a_route_limit_cuts_a_chunked_body_with_413() -> None:
    gate = Gate()
    with serve_in_thread(build(gate)) as srv:
        r = httpx.post(srv.base_url + "/limited", content=pieces(100, 4096), timeout=10)
        assert r.status_code == 413
        assert r.headers["connection"] == "close"
        deadline = time.monotonic() + 5
        while not gate.events and time.monotonic() < deadline:
            time.sleep(0.01)
        # the handler never takes the cut body for a whole one
        assert len(gate.events) == 1 and gate.events[0].startswith("cut "), gate.events
        assert int(gate.events[0].rsplit(" ", 1)[1]) <= 100_000  # never more than the limit
        # a declared length over the limit: 413 before the handler runs
        n = len(gate.events)
        r = httpx.post(srv.base_url + "/limited", content=b"x" * 100_001, timeout=10)
        assert r.status_code == 413 and len(gate.events) == n
        assert httpx.post(srv.base_url + "/limited", content=b"x" * 100_000).json() == {"size": 100_000}
        assert gate.events[-1] == "whole"


def test_a_client_that_leaves_mid_body_cancels_the_handler() -> None:
    gate = Gate()
    app = build(gate)
    with serve_in_thread(app) as srv:
        s = socket.create_connection((HOST, srv.port), timeout=5)
        s.sendall(b"POST /leave HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        deadline = time.monotonic() + 5
        while "piece" not in gate.events and time.monotonic() < deadline:
            time.sleep(0.01)
        s.close()
        deadline = time.monotonic() + 10
        while not {"cancelled", "disconnected"} & set(gate.events) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert {"cancelled", "disconnected"} & set(gate.events), gate.events
        while app.get_server_stats()["active_connections"] and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = app.get_server_stats()
        assert stats["active_connections"] == 0 and stats["abandoned"] == 1


def test_an_answer_before_the_body_ends_closes_the_connection() -> None:
    gate = Gate()
    with serve_in_thread(build(gate)) as srv, RawConn(srv.port) as conn:
        conn.send(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100)
        r = conn.read_response()
        assert r.status == 200 and r.header("connection") == "close"
        closed, _ = conn.wait_closed(5)
        assert closed


def test_a_pipelined_request_after_a_streamed_body_is_answered() -> None:
    gate = Gate()
    with serve_in_thread(build(gate)) as srv, RawConn(srv.port) as conn:
        conn.send(b"POST /digest HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.1)  # the head alone: the handler starts before the body
        conn.send(b"3\r\nabc\r\n0\r\n\r\nPOST /sync HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        first, second = conn.read_response(), conn.read_response()
        assert first.json()["sha256"] == hashlib.sha256(b"abc").hexdigest()
        assert second.json() == {"size": 2, "pieces": [2, 0]}


def test_await_body_json_and_form_read_a_streamed_body() -> None:
    gate = Gate()
    with serve_in_thread(build(gate)) as srv, httpx.Client(base_url=srv.base_url, timeout=20) as c:
        r = c.post("/whole", content=pieces(64, 65536))
        assert r.json() == {"size": 64 * 65536, "same": True, "json": None}
        r = c.post("/whole", content=iter([b'{"a": ', b"[1, 2]}"]), headers={"content-type": "application/json"})
        assert r.json() == {"size": 13, "same": True, "json": {"a": [1, 2]}}
        form = {"content-type": "application/x-www-form-urlencoded"}
        r = c.post("/form", content=iter([b"a=1&b=", b"2&b=3"]), headers=form)
        assert r.json() == {"a": "1", "b": ["2", "3"]}
        r = c.post("/form", content=pieces(3, 10), headers={"x-stream": "1"})
        assert sum(r.json()["pieces"]) == 30 and r.json()["pieces"][-1] == 0


def test_sync_handlers_keep_the_sync_accessors() -> None:
    gate = Gate()
    with serve_in_thread(build(gate)) as srv:
        r = httpx.post(srv.base_url + "/sync", content=pieces(3, 1000), timeout=10)
        assert r.json() == {"size": 3000, "pieces": [3000, 0]}
