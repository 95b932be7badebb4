"""HTTP/1.1 on the wire: raw sockets against the shared subprocess server."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import pytest

from tests.server.conftest import RawConn, ServerProcess, build_request, parse_responses, raw_exchange


def get(path: str, **headers: str) -> bytes:
    return build_request("GET", path, headers)


# ---- connection handling -------------------------------------------------------------------


def test_keep_alive_two_requests_one_connection(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r1 = c.request("GET", "/users/1")
        assert r1.status == 200 and r1.json() == {"user_id": 1, "q": "x"}
        assert (r1.header("connection") or "").lower() != "close"
        r2 = c.request("GET", "/users/2?q=again")
        assert r2.status == 200 and r2.json() == {"user_id": 2, "q": "again"}
        assert not c.has_data(0.1), "connection closed or extra bytes after two keep-alive responses"


def test_pipelining_three_requests_in_one_write(main_server: ServerProcess) -> None:
    data = (
        build_request("GET", "/users/1")
        + build_request("POST", "/echo", {"Content-Type": "text/plain"}, b"second body")
        + build_request("GET", "/ret/str")
    )
    with RawConn(main_server.port) as c:
        c.send(data)  # one write
        rs = [c.read_response() for _ in range(3)]
        assert [r.status for r in rs] == [200, 200, 200]
        assert rs[0].json() == {"user_id": 1, "q": "x"}
        assert rs[1].body == b"second body" and rs[1].header("x-method") == "POST"
        assert rs[2].body == '"h\u00e9llo w\u00f6rld"'.encode()  # a returned str: a JSON string
        assert not c.has_data(0.1)


def test_pipelined_async_response_keeps_order(main_server: ServerProcess) -> None:
    """A slow async request then a fast sync one, in one write: answered in request order."""
    data = get("/slow?delay=0.3") + get("/sync-quick") + get("/async-json")
    with RawConn(main_server.port) as c:
        c.send(data)
        rs = [c.read_response() for _ in range(3)]
    assert [r.json() for r in rs] == [{"slept": 0.3}, {"sync": True}, {"async": True, "path": "/async-json"}]


def test_pipelined_large_responses(main_server: ServerProcess) -> None:
    with RawConn(main_server.port, timeout=10) as c:
        c.send(get("/big") + get("/") + get("/big"))
        rs = [c.read_response() for _ in range(3)]
    assert [len(r.body) for r in rs] == [1 << 20, 17, 1 << 20]
    assert rs[0].body == b"0123456789abcdef" * 65536 == rs[2].body
    assert rs[1].json() == {"hello": "world"}


def test_raw_exchange_reads_n_responses(main_server: ServerProcess) -> None:
    raw = raw_exchange(main_server.port, get("/") + get("/users"), n=2)
    rs = parse_responses(raw)
    assert [r.body for r in rs] == [b'{"hello":"world"}', b'["alice","bob"]']


def test_connection_close(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        c.send(get("/", Connection="close"))
        r = c.read_response()
        assert r.status == 200 and r.json() == {"hello": "world"}
        assert r.header("connection") == "close"
        closed, rest = c.wait_closed(3)
        assert closed and rest == b""


def test_connection_close_ignores_pipelined_rest(main_server: ServerProcess) -> None:
    raw = raw_exchange(main_server.port, get("/", Connection="close") + get("/users"))
    rs = parse_responses(raw)
    assert len(rs) == 1 and rs[0].json() == {"hello": "world"}


def test_http10_closes_after_response(main_server: ServerProcess) -> None:
    raw = raw_exchange(main_server.port, b"GET /users/5 HTTP/1.0\r\n\r\n")
    (r,) = parse_responses(raw)
    assert r.status == 200 and r.json() == {"user_id": 5, "q": "x"}
    assert r.header("connection") == "close"


def test_http10_keep_alive(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        c.send(b"GET /info HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r1 = c.read_response()
        assert r1.status == 200
        assert r1.json()["http_version"] == "1.0"
        assert r1.header("connection", "").lower() == "keep-alive"
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r2 = c.read_response()
        assert r2.status == 200 and r2.json() == {"hello": "world"}
        c.send(b"GET /users HTTP/1.0\r\n\r\n")  # without keep-alive: last one
        r3 = c.read_response()
        assert r3.json() == ["alice", "bob"]
        closed, rest = c.wait_closed(3)
        assert closed and rest == b""


# ---- request bodies ------------------------------------------------------------------------


def test_chunked_request_body(main_server: ServerProcess) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
    with RawConn(main_server.port) as c:
        c.send(head + b"5\r\nhello\r\n6\r\n world\r\n")
        time.sleep(0.05)
        c.send(b"1;ext=1\r\n!\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"hello world!"
        assert r.header("x-body-length") == "12"
        # the connection goes on after a chunked body
        assert c.request("GET", "/").status == 200


def test_request_split_into_tiny_writes(main_server: ServerProcess) -> None:
    data = build_request("POST", "/json", {"Content-Type": "application/json"}, b'{"split": [1, 2, 3]}')
    with RawConn(main_server.port) as c:
        for i in range(0, len(data), 7):
            c.send(data[i : i + 7])
            time.sleep(0.002)
        r = c.read_response()
    assert r.status == 200 and r.json() == {"received": {"split": [1, 2, 3]}}


def test_expect_100_continue(main_server: ServerProcess) -> None:
    body = b'{"expect": "continue"}'
    head = (
        b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with RawConn(main_server.port) as c:
        c.send(head)
        interim = c.read_response()  # before any body byte was sent
        assert interim.status == 100
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(body)
        r = c.read_response()
        assert r.status == 200
        assert r.json() == {"received": {"expect": "continue"}}


def test_expect_100_continue_with_body_already_sent_gets_final_response(main_server: ServerProcess) -> None:
    raw = raw_exchange(
        main_server.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    rs = parse_responses(raw)
    assert rs[-1].status == 200 and rs[-1].body == b"abc"
    assert all(r.status in (100, 200) for r in rs) and len(rs) <= 2


# ---- HEAD, standard headers ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ret/html", "/", "/ret/bytes", "/big"])
def test_head_has_get_headers_and_no_body(main_server: ServerProcess, path: str) -> None:
    with RawConn(main_server.port) as c:
        get_resp = c.request("GET", path)
        c.send(build_request("HEAD", path) + build_request("GET", "/users"))
        head_resp = c.read_response(head=True)
        after = c.read_response()  # must be the next response, not body bytes
    assert head_resp.status == get_resp.status == 200
    assert head_resp.body == b""
    assert head_resp.header("content-length") == get_resp.header("content-length") == str(len(get_resp.body))
    assert head_resp.header("content-type") == get_resp.header("content-type")
    assert after.status == 200 and after.json() == ["alice", "bob"]


def test_head_on_404_and_405_has_no_body(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        c.send(build_request("HEAD", "/nope") + build_request("HEAD", "/json") + build_request("GET", "/"))
        r404 = c.read_response(head=True)
        r405 = c.read_response(head=True)
        after = c.read_response()
    assert r404.status == 404 and int(r404.header("content-length")) == len(b'{"detail":"Not Found"}')
    assert r405.status == 405 and r405.header("allow") == "POST, OPTIONS"
    assert after.status == 200 and after.json() == {"hello": "world"}


def test_date_and_server_headers(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r = c.request("GET", "/")
        r404 = c.request("GET", "/nope")
    for resp in (r, r404):
        assert resp.header("server") == "catzilla"
        date = resp.header("date")
        assert date is not None and date.endswith(" GMT") and len(date) == 29
        when = parsedate_to_datetime(date)
        assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 10
        assert len(resp.header_list("date")) == 1 and len(resp.header_list("server")) == 1


def test_options_star(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r = c.request("OPTIONS", "*")
    assert r.status == 204
    assert r.header("allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


# ---- malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # two spaces
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # absolute-form
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),  # obs-fold
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    ],
)
def test_malformed_request_gets_error_and_close(main_server: ServerProcess, data: bytes, status: int) -> None:
    raw = raw_exchange(main_server.port, data + get("/"))  # what follows is never served
    rs = parse_responses(raw)
    assert len(rs) == 1, f"expected one error response then close, got {raw[:500]!r}"
    assert rs[0].status == status
    assert rs[0].header("connection") == "close"
    assert rs[0].json() == {"detail": rs[0].reason}
    # a new connection is served
    with RawConn(main_server.port) as c:
        assert c.request("GET", "/").json() == {"hello": "world"}


def test_bad_request_after_good_one_on_same_connection(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        assert c.request("GET", "/").status == 200
        c.send(b"NOT A REQUEST\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        closed, rest = c.wait_closed(3)
        assert closed and rest == b""


def test_client_closing_early_does_not_hurt_the_server(main_server: ServerProcess) -> None:
    for _ in range(20):
        c = RawConn(main_server.port)
        c.send(b"GET /slow?delay=0.05 HTTP/1.1\r\nHost: x\r\n\r\n")
        c.close()
        c = RawConn(main_server.port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        c.close()
    time.sleep(0.2)
    with RawConn(main_server.port) as c:
        assert c.request("GET", "/").json() == {"hello": "world"}
        assert c.request("GET", "/slow?delay=0.01").json() == {"slept": 0.01}


def test_upgrade_request_is_served_as_plain_http(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r = c.request("GET", "/", {"Connection": "Upgrade", "Upgrade": "websocket"})
        assert r.status == 200 and r.json() == {"hello": "world"}
        assert c.request("GET", "/users").status == 200


def test_leading_empty_lines_are_ignored(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        c.send(b"\r\n\r\n" + get("/"))
        assert c.read_response().json() == {"hello": "world"}


def test_user_framing_headers_are_dropped(main_server: ServerProcess) -> None:
    """Content-Length, Transfer-Encoding and Connection from a handler must not
    change the framing: the body is 3 bytes and the connection goes on."""
    with RawConn(main_server.port) as c:
        c.send(get("/ret/framing") + get("/"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"abc"
        assert r.header_list("content-length") == ["3"]
        assert r.header("transfer-encoding") is None
        assert r.header("connection") is None
        assert c.read_response().json() == {"hello": "world"}


def test_user_server_and_date_replace_the_standard_ones(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r = c.request("GET", "/ret/server-date")
    assert r.header_list("server") == ["mine"]
    assert r.header_list("date") == ["Thu, 01 Jan 1970 00:00:00 GMT"]


def test_304_has_no_body(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        c.send(get("/ret/304") + get("/"))
        r = c.read_response()
        assert r.status == 304 and r.header("etag") == '"v1"'
        assert r.header("content-length") is None
        assert c.read_response().json() == {"hello": "world"}  # "not sent" was not sent


def test_get_with_body_is_consumed(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        c.send(build_request("GET", "/", body=b"ignored body") + get("/users"))
        assert c.read_response().json() == {"hello": "world"}
        assert c.read_response().json() == ["alice", "bob"]


def test_chunked_body_with_trailers(main_server: ServerProcess) -> None:
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: v\r\n\r\n"
    with RawConn(main_server.port) as c:
        c.send(data + get("/"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"abc"
        assert c.read_response().json() == {"hello": "world"}


def test_header_value_whitespace_trimmed(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Token: \t secret value \t\r\n\r\n")
        r = c.read_response()
    assert r.json()["upper"] == "secret value"


def test_default_body_limit_is_1_mib(main_server: ServerProcess) -> None:
    body = bytes(range(256)) * 4096  # exactly 1 MiB
    with RawConn(main_server.port, timeout=10) as c:
        r = c.request("POST", "/echo", body=body)
        assert r.status == 200 and r.body == body
    with RawConn(main_server.port, timeout=10) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
        r = c.read_response()
        assert r.status == 413 and r.header("connection") == "close"
