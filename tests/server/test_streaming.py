"""Streamed responses over real sockets: StreamingResponse (sync and async
iterators), generators returned as they are, fixed length, HTTP/1.0, HEAD,
backpressure, client disconnects, failures mid-body, server-sent events."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import httpx
import pytest

from catzilla import Catzilla, Request, StreamingResponse
from catzilla.sse import EventSourceResponse, ServerSentEvent
from tests.server.conftest import HOST, serve_in_thread

CHUNK = 64 * 1024


class Probe:
    """What the generators of one app did, seen from the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.produced = 0

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def wait_for(self, event: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if event in self.events:
                    return True
            time.sleep(0.01)
        return False


def build_app(probe: Probe) -> Catzilla:
    app = Catzilla()

    @app.get("/sync")
    def sync_stream() -> StreamingResponse:
        def gen():
            try:
                for i in range(5):
                    yield f"line {i}\n"
            finally:
                probe.add("sync closed")

        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/async")
    async def async_stream() -> StreamingResponse:
        async def gen():
            for i in range(3):
                await asyncio.sleep(0.005)
                yield f"part {i};".encode()

        return StreamingResponse(gen(), media_type="application/octet-stream")

    @app.get("/generator")
    def generator():
        yield "a"
        yield b"b"

    @app.get("/async-generator")
    async def async_generator_handler():
        async def gen():
            yield "x"
            yield "y"

        return gen()

    @app.get("/fixed")
    def fixed() -> StreamingResponse:
        return StreamingResponse(iter([b"abc", b"de"]), headers={"content-length": "5"})

    @app.get("/short")
    def short() -> StreamingResponse:
        return StreamingResponse(iter([b"abc"]), headers={"content-length": "10"})

    @app.get("/endless")
    def endless() -> StreamingResponse:
        def gen():
            try:
                while True:
                    with probe.lock:
                        probe.produced += CHUNK
                    yield b"z" * CHUNK
            finally:
                probe.add("endless closed")

        return StreamingResponse(gen())

    @app.get("/async-fast")
    async def async_fast() -> StreamingResponse:
        async def gen():
            try:
                while True:  # never awaits: only backpressure stops it
                    with probe.lock:
                        probe.produced += CHUNK
                    yield b"z" * CHUNK
            finally:
                probe.add("async fast closed")

        return StreamingResponse(gen())

    @app.get("/async-endless")
    async def async_endless() -> StreamingResponse:
        async def gen():
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                probe.add("async cancelled")
                raise
            finally:
                probe.add("async endless closed")

        return StreamingResponse(gen())

    @app.get("/async-sleeper")
    async def async_sleeper() -> StreamingResponse:
        async def gen():
            try:
                yield b"first\n"
                await asyncio.sleep(3600)
                yield b"never\n"
            finally:
                probe.add("sleeper closed")

        return StreamingResponse(gen())

    @app.get("/fails")
    def fails() -> StreamingResponse:
        def gen():
            yield b"ok so far\n"
            raise RuntimeError("the source broke")

        return StreamingResponse(gen())

    @app.get("/bad-item")
    def bad_item() -> StreamingResponse:
        return StreamingResponse(iter([b"fine", 42]))

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/events")
    async def events(request: Request) -> EventSourceResponse:
        start = int(request.headers.get("last-event-id", "0"))

        async def gen():
            for n in range(start + 1, start + 4):
                yield ServerSentEvent(data=f"tick {n}\nsecond line", id=n, event="tick")
            yield {"data": "done", "retry": 1500}
            yield "plain text"

        return EventSourceResponse(gen())

    @app.get("/events-slow")
    async def events_slow() -> EventSourceResponse:
        async def gen():
            await asyncio.sleep(0.35)
            yield ServerSentEvent(data="late")

        return EventSourceResponse(gen(), ping=0.1)

    @app.get("/events-sync")
    def events_sync() -> EventSourceResponse:
        return EventSourceResponse(iter([ServerSentEvent(data="one"), ServerSentEvent(data="two")]))

    return app


@pytest.fixture(scope="module")
def served():
    probe = Probe()
    with serve_in_thread(build_app(probe)) as srv:
        yield srv, probe


def raw(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send `request`, read until the server closes or `timeout`."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    return data


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """The data of a chunked body, and whether the last chunk was there."""
    out, pos = b"", 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end], 16)
        if size == 0:
            return out, body[end + 2 : end + 4] == b"\r\n"
        out += body[end + 2 : end + 2 + size]
        assert body[end + 2 + size : end + 4 + size] == b"\r\n"
        pos = end + 4 + size


def test_sync_iterator_is_sent_chunked(served):
    srv, probe = served
    data = raw(srv.port, b"GET /sync HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert b"Content-Type: text/plain; charset=utf-8" in head or b"content-type: text/plain; charset=utf-8" in head
    assert dechunk(body) == (b"".join(f"line {i}\n".encode() for i in range(5)), True)
    assert probe.wait_for("sync closed")


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/async", b"part 0;part 1;part 2;"), ("/generator", b"ab"), ("/async-generator", b"xy")],
)
def test_iterators_of_every_kind(served, path, expected):
    srv, _ = served
    r = httpx.get(srv.base_url + path)
    assert r.status_code == 200
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.content == expected


def test_content_length_makes_a_fixed_length_body(served):
    srv, _ = served
    r = httpx.get(srv.base_url + "/fixed")
    assert r.headers["content-length"] == "5" and "transfer-encoding" not in r.headers
    assert r.content == b"abcde"


def test_a_body_short_of_its_length_closes_the_connection(served):
    srv, _ = served
    data = raw(srv.port, b"GET /short HTTP/1.1\r\nHost: a\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 10" in head
    assert body == b"abc"  # then the close: never a whole-looking wrong body


def test_http10_body_ends_with_the_close(served):
    srv, _ = served
    data = raw(srv.port, b"GET /sync HTTP/1.0\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"chunked" not in head and b"Content-Length" not in head
    assert body == b"".join(f"line {i}\n".encode() for i in range(5))


def test_head_sends_no_body(served):
    srv, _ = served
    with socket.create_connection((HOST, srv.port), timeout=5) as s:
        s.sendall(b"HEAD /endless HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while b'{"hello":"world"}' not in data:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
    first, _, rest = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in first
    assert rest.startswith(b"HTTP/1.1 200 OK")  # the next response follows the head at once


def test_keep_alive_after_a_stream(served):
    srv, _ = served
    with httpx.Client(base_url=srv.base_url) as client:
        for _ in range(3):
            assert client.get("/sync").text.startswith("line 0")
            assert client.get("/hello").json() == {"hello": "world"}


@pytest.mark.parametrize(("path", "closed"), [("/endless", "endless closed"), ("/async-fast", "async fast closed")])
def test_slow_reader_bounds_what_the_generator_produces(served, path: str, closed: str):
    """Backpressure: a client that does not read stops the producer."""
    srv, probe = served
    with probe.lock:
        probe.produced = 0
    s = socket.create_connection((HOST, srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    time.sleep(1.0)
    with probe.lock:
        stalled = probe.produced
    time.sleep(0.5)
    with probe.lock:
        later = probe.produced
    # queued output bound (1 MiB), what a pump has on its way (256 KiB) and
    # kernel socket buffers: far from unbounded
    assert stalled < 24 * 1024 * 1024
    assert later == stalled  # nothing more while the client reads nothing
    got = 0
    while got < 2 * stalled:
        got += len(s.recv(1 << 20))
    with probe.lock:
        assert probe.produced > stalled  # reading resumed the producer
    s.close()
    assert probe.wait_for(closed)  # the client left: the generator was closed


def test_other_clients_are_served_while_a_generator_streams(served):
    srv, _ = served
    s = socket.create_connection((HOST, srv.port))
    s.sendall(b"GET /endless HTTP/1.1\r\nHost: a\r\n\r\n")
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            if not s.recv(1 << 20):
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        latencies = []
        with httpx.Client(base_url=srv.base_url) as client:
            for _ in range(20):
                t0 = time.perf_counter()
                assert client.get("/hello").status_code == 200
                latencies.append(time.perf_counter() - t0)
        assert max(latencies) < 1.0
    finally:
        stop.set()
        s.shutdown(socket.SHUT_RDWR)  # wakes the reader before the descriptor goes
        t.join(5)
        s.close()


def test_disconnect_closes_an_async_generator(served):
    srv, probe = served
    s = socket.create_connection((HOST, srv.port))
    s.sendall(b"GET /async-endless HTTP/1.1\r\nHost: a\r\n\r\n")
    # Wait for a piece of the body: a generator cancelled before its first
    # step never entered its `try`, so it has no `finally` to run.
    data = b""
    while b"tick" not in data:
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 200 OK")
    s.close()
    assert probe.wait_for("async endless closed")


def test_disconnect_cancels_an_async_generator_in_its_await(served):
    srv, probe = served
    s = socket.create_connection((HOST, srv.port))
    s.sendall(b"GET /async-sleeper HTTP/1.1\r\nHost: a\r\n\r\n")
    data = b""
    while b"first" not in data:
        data += s.recv(4096)
    s.close()
    # No write is due for an hour: the server sees the close because it
    # reads while streaming, and cancels the generator in its await.
    assert probe.wait_for("sleeper closed")
    with socket.create_connection((HOST, srv.port)) as other:
        other.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert other.recv(4096).startswith(b"HTTP/1.1 200")


def test_a_failing_iterator_cuts_the_body_and_is_logged(served, caplog):
    srv, _ = served
    with caplog.at_level(logging.ERROR, logger="catzilla.error"):
        data = raw(srv.port, b"GET /fails HTTP/1.1\r\nHost: a\r\n\r\n")
        deadline = time.monotonic() + 5
        while not any("streamed response" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    data_part, _ = dechunk(body + b"0\r\n")  # no last chunk was sent
    assert data_part == b"ok so far\n"
    assert not body.endswith(b"0\r\n\r\n")
    assert b"the source broke" not in data  # nothing internal reaches the client
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(srv.base_url + "/bad-item")


def test_server_sent_events(served):
    srv, _ = served
    r = httpx.get(srv.base_url + "/events", headers={"Last-Event-ID": "41"})
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-store"
    assert r.text == (
        "id: 42\r\nevent: tick\r\ndata: tick 42\r\ndata: second line\r\n\r\n"
        "id: 43\r\nevent: tick\r\ndata: tick 43\r\ndata: second line\r\n\r\n"
        "id: 44\r\nevent: tick\r\ndata: tick 44\r\ndata: second line\r\n\r\n"
        "data: done\r\nretry: 1500\r\n\r\n"
        "data: plain text\r\n\r\n"
    )
    assert httpx.get(srv.base_url + "/events-sync").text == "data: one\r\n\r\ndata: two\r\n\r\n"


def test_server_sent_events_arrive_unbuffered_with_pings(served):
    srv, _ = served
    seen: list[tuple[float, str]] = []
    t0 = time.monotonic()
    with httpx.stream("GET", srv.base_url + "/events-slow") as r:
        for line in r.iter_lines():
            if line:
                seen.append((time.monotonic() - t0, line))
    texts = [text for _, text in seen]
    assert texts.count(": ping") >= 2
    assert texts[-1] == "data: late"
    first_ping = next(at for at, text in seen if text == ": ping")
    assert first_ping < 0.3  # each ping went out when made, not with the event


def test_event_fields_are_checked():
    with pytest.raises(ValueError, match="line break"):
        ServerSentEvent(data="x", event="a\nb")
    with pytest.raises(ValueError, match="retry"):
        ServerSentEvent(data="x", retry=-1)
    with pytest.raises(TypeError, match="iterable"):
        StreamingResponse(b"bytes are not a stream")  # type: ignore[arg-type]


def test_graceful_stop_gives_open_streams_the_shutdown_timeout():
    probe = Probe()
    app = Catzilla()

    @app.get("/forever")
    async def forever() -> StreamingResponse:
        async def gen():
            try:
                while True:
                    yield b"."
                    await asyncio.sleep(0.02)
            finally:
                probe.add("closed")

        return StreamingResponse(gen())

    with serve_in_thread(app, shutdown_timeout=0.5) as srv:
        s = socket.create_connection((HOST, srv.port))
        s.sendall(b"GET /forever HTTP/1.1\r\nHost: a\r\n\r\n")
        first = b""
        while b"\r\n.\r\n" not in first:  # the generator has started
            first += s.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        app.stop()
        srv.thread.join(10)
        took = time.monotonic() - t0
        assert not srv.thread.is_alive()
        assert 0.4 < took < 5  # the stream had its shutdown_timeout, then was closed
        assert probe.wait_for("closed")
        data = b""
        s.settimeout(5)
        while chunk := s.recv(65536):
            data += chunk
        assert data.count(b".") > 5  # it kept streaming meanwhile
        s.close()


def test_streams_through_middleware():
    from catzilla.middleware import GZipMiddleware

    app = Catzilla(middleware=[GZipMiddleware(minimum_size=1)])

    @app.get("/gen")
    def gen():
        yield "a" * 600
        yield "b"

    @app.get("/response")
    async def response() -> StreamingResponse:
        async def body():
            yield b"x" * 600

        return StreamingResponse(body(), media_type="text/plain")

    with serve_in_thread(app) as srv:
        r = httpx.get(srv.base_url + "/gen", headers={"accept-encoding": "gzip"})
        assert r.status_code == 200 and r.text == "a" * 600 + "b"
        assert "content-encoding" not in r.headers  # streamed bodies go out as they are
        r = httpx.get(srv.base_url + "/response", headers={"accept-encoding": "gzip"})
        assert r.status_code == 200 and r.content == b"x" * 600
