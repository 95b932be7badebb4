"""Limits and timeouts (a dedicated server with small limits, tiny timeouts)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.server.conftest import RawConn, ServerProcess, build_request, parse_responses, raw_exchange, start_server

# apps.SMALL_LIMITS: max_url_length=200, max_header_size=1024, max_headers=20,
# max_body_size=1000, header_timeout=0.5, body_timeout=0.5, keepalive_timeout=0.5


def one_error(port: int, data: bytes) -> tuple[int, dict]:
    """Send data; expect exactly one response and then the connection closed."""
    raw = raw_exchange(port, data)
    rs = parse_responses(raw)
    assert len(rs) == 1, f"expected one response then close, got {raw[:400]!r}"
    assert rs[0].header("connection") == "close"
    return rs[0].status, rs[0].json()


# ---- sizes -----------------------------------------------------------------------------------


def test_url_at_limit_is_served(limits_server: ServerProcess) -> None:
    target = "/" + "a" * 199  # 200 bytes: the limit
    with RawConn(limits_server.port) as c:
        r = c.request("GET", target)
    assert r.status == 200 and r.json() == {"rest": "a" * 199}


def test_url_too_long_is_414(limits_server: ServerProcess) -> None:
    status, body = one_error(limits_server.port, build_request("GET", "/" + "a" * 200))  # 201 bytes
    assert status == 414 and body == {"detail": "URI Too Long"}
    status, _ = one_error(limits_server.port, build_request("GET", "/?q=" + "x" * 5000))
    assert status == 414


def test_header_section_too_big_is_431(limits_server: ServerProcess) -> None:
    status, body = one_error(limits_server.port, build_request("GET", "/", {"X-Big": "v" * 1100}))
    assert status == 431 and body == {"detail": "Request Header Fields Too Large"}
    # many small headers adding up over 1024 bytes
    many = {f"X-H{i}": "v" * 60 for i in range(18)}
    status, _ = one_error(limits_server.port, build_request("GET", "/", many))
    assert status == 431


def test_header_section_under_limit_is_served(limits_server: ServerProcess) -> None:
    with RawConn(limits_server.port) as c:
        r = c.request("GET", "/", {"X-Big": "v" * 800})
    assert r.status == 200


def test_too_many_headers_is_431(limits_server: ServerProcess) -> None:
    headers = {f"X-{i}": "1" for i in range(25)}
    status, _ = one_error(limits_server.port, build_request("GET", "/", headers))
    assert status == 431
    with RawConn(limits_server.port) as c:  # 19 + Host = 20 fields: fine
        assert c.request("GET", "/", {f"X-{i}": "1" for i in range(19)}).status == 200


def test_body_too_big_is_413(limits_server: ServerProcess) -> None:
    with RawConn(limits_server.port) as c:
        r = c.request("POST", "/echo", body=b"x" * 1000)  # at the limit
        assert r.status == 200 and r.json() == {"length": 1000}
    # Content-Length over the limit: refused as soon as the head is complete,
    # before the body is sent
    with RawConn(limits_server.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
        r = c.read_response(timeout=3)
        assert r.status == 413 and r.json() == {"detail": r.reason}
        assert r.header("connection") == "close"
        closed, _ = c.wait_closed(3)
        assert closed


def test_chunked_body_too_big_is_413(limits_server: ServerProcess) -> None:
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += b"258\r\n" + b"y" * 600 + b"\r\n" + b"258\r\n" + b"y" * 600 + b"\r\n0\r\n\r\n"
    status, _ = one_error(limits_server.port, data)
    assert status == 413


def test_expect_continue_over_body_limit_gets_413_not_100(limits_server: ServerProcess) -> None:
    with RawConn(limits_server.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        r = c.read_response(timeout=3)
        assert r.status == 413, f"got {r.status} before the final answer"
        closed, rest = c.wait_closed(3)
        assert closed and rest == b""


# ---- timeouts ---------------------------------------------------------------------------------------


def test_header_timeout_closes_partial_request(limits_server: ServerProcess) -> None:
    with RawConn(limits_server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Part")
        t0 = time.monotonic()
        closed, data = c.wait_closed(5)
        elapsed = time.monotonic() - t0
    assert closed, "partial request head was not timed out"
    assert elapsed >= 0.4, f"closed after {elapsed:.2f}s, before header_timeout=0.5"
    if data:
        (r,) = parse_responses(data)
        assert r.status == 408


def test_header_timeout_is_not_reset_by_trickling_bytes(limits_server: ServerProcess) -> None:
    """Slowloris: a byte every 0.1 s must not keep a head alive past header_timeout."""
    with RawConn(limits_server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 4:
            try:
                c.send(b"X")
            except OSError:
                closed = True
                break
            if c.has_data(0.1):
                closed = True
                break
        elapsed = time.monotonic() - t0
    assert closed, "a trickled request head was kept open for 4 s with header_timeout=0.5"
    assert elapsed < 3


def test_body_timeout_closes_stalled_body(limits_server: ServerProcess) -> None:
    with RawConn(limits_server.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-some")
        t0 = time.monotonic()
        closed, data = c.wait_closed(5)
        elapsed = time.monotonic() - t0
    assert closed, "stalled body was not timed out"
    assert elapsed >= 0.4
    if data:
        (r,) = parse_responses(data)
        assert r.status == 408


def test_keepalive_idle_timeout(limits_server: ServerProcess) -> None:
    with RawConn(limits_server.port) as c:
        assert c.request("GET", "/").status == 200
        t0 = time.monotonic()
        closed, data = c.wait_closed(5)
        elapsed = time.monotonic() - t0
    assert closed, "idle keep-alive connection was not closed"
    assert data == b"", f"an idle keep-alive connection got bytes before closing: {data!r}"
    assert elapsed >= 0.4


def test_keepalive_timeout_restarts_after_each_request(limits_server: ServerProcess) -> None:
    with RawConn(limits_server.port) as c:
        for _ in range(5):  # 5 x 0.2 s > keepalive_timeout, each gap < it
            assert c.request("GET", "/").status == 200
            time.sleep(0.2)
        assert c.request("GET", "/").status == 200


@pytest.mark.parametrize("path", ["/sleep", "/sync-sleep"])
def test_timeouts_do_not_cut_a_running_handler(limits_server: ServerProcess, path: str) -> None:
    """A handler running longer than header/body/keep-alive timeouts (0.5 s)
    still gets its response out."""
    with RawConn(limits_server.port) as c:
        r = c.request("GET", path)
        assert r.status == 200 and "slept" in r.json()


@pytest.mark.parametrize("path", ["/sleep", "/sync-sleep"])
def test_keepalive_survives_a_handler_slower_than_keepalive_timeout(limits_server: ServerProcess, path: str) -> None:
    """The response did not say Connection: close, so the connection must take
    the next request (keepalive_timeout counts from the response, not from
    before the handler ran)."""
    with RawConn(limits_server.port) as c:
        r = c.request("GET", path)
        assert r.status == 200 and r.header("connection") is None
        assert not c.has_data(0.05), "connection closed right after a keep-alive response"
        c.send(build_request("GET", "/"))
        r2 = c.read_response()
        assert r2.status == 200 and r2.json() == {"ok": True}


def test_idle_connection_without_request_is_closed(limits_server: ServerProcess) -> None:
    with RawConn(limits_server.port) as c:
        closed, data = c.wait_closed(5)
    assert closed and data == b""


# ---- max_connections ----------------------------------------------------------------------------------

MAXCONN_APP = """
from catzilla import Catzilla
app = Catzilla()

@app.get("/")
def index():
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def maxconn_server() -> Iterator[ServerProcess]:
    with start_server(MAXCONN_APP, listen="max_connections=5") as srv:
        yield srv


def test_max_connections(maxconn_server: ServerProcess) -> None:
    port = maxconn_server.port
    conns: list[RawConn] = []
    try:
        deadline = time.monotonic() + 5
        while len(conns) < 5:  # the readiness probe's connection may still count for a moment
            c = RawConn(port)
            try:
                assert c.request("GET", "/").json() == {"ok": True}
                conns.append(c)
            except ConnectionError:
                c.close()
                assert time.monotonic() < deadline, f"only {len(conns)} connections accepted"
                time.sleep(0.1)
        extra = RawConn(port)
        t0 = time.monotonic()
        with contextlib.suppress(OSError):  # refused at once is a correct outcome too
            extra.send(build_request("GET", "/"))
        closed, data = extra.wait_closed(3)
        extra.close()
        assert closed, "6th connection was kept open with max_connections=5"
        assert data == b"", f"6th connection got a response: {data[:200]!r}"
        assert time.monotonic() - t0 < 2
        for c in conns:  # the first five still work
            assert c.request("GET", "/").json() == {"ok": True}
        conns.pop().close()
        deadline = time.monotonic() + 5
        while True:  # a slot freed: a new connection is served again
            try:
                with RawConn(port) as again:
                    assert again.request("GET", "/").json() == {"ok": True}
                break
            except ConnectionError:
                assert time.monotonic() < deadline, "no connection served after one of five closed"
                time.sleep(0.05)
    finally:
        for c in conns:
            c.close()


# ---- write_timeout ----------------------------------------------------------------------------------

BIG_APP = """
from catzilla import Catzilla
app = Catzilla()
BIG = b"w" * (1 << 20)

@app.get("/big")
def big():
    return BIG
"""


def test_client_that_never_reads_gets_write_timeout() -> None:
    with start_server(BIG_APP, listen="write_timeout=0.5, max_write_buffer=1048576") as srv:
        with RawConn(srv.port, timeout=10) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
            c.send(build_request("GET", "/big") * 40)  # 40 MiB of responses
            time.sleep(2.5)  # never reading: the server gives up after write_timeout
            closed, data = c.wait_closed(5)
        assert closed, "connection kept open although its client did not read for 2.5 s"
        assert len(data) < 40 << 20, "all 40 responses were delivered: nothing timed out"
        # the server is fine
        with RawConn(srv.port) as c2:
            r = c2.request("GET", "/big")
            assert r.status == 200 and len(r.body) == 1 << 20
