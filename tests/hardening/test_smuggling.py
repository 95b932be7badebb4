"""Request smuggling and framing: each case is refused and its connection closed.

One row per case. Every refused request gets the status in its row (400
unless noted) and a closed connection; a new connection is then served.
"""

from __future__ import annotations

import pytest

from tests.hardening.conftest import served_normally
from tests.server.conftest import RawConn, ServerProcess

H = "Host: example.com\r\n"

CASES: list[tuple[str, bytes, int]] = [
    (
        "Content-Length and Transfer-Encoding",
        f"POST / HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode(),
        400,
    ),
    (
        "Transfer-Encoding and Content-Length",
        f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n".encode(),
        400,
    ),
    (
        "two different Content-Length",
        f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".encode(),
        400,
    ),
    (
        "two equal Content-Length",
        f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc".encode(),
        400,
    ),
    ("Content-Length list", f"POST / HTTP/1.1\r\n{H}Content-Length: 3, 3\r\n\r\nabc".encode(), 400),
    (
        "Transfer-Encoding gzip (chunked not final)",
        f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n".encode(),
        400,
    ),
    (
        "Transfer-Encoding chunked, gzip",
        f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, gzip\r\n\r\n".encode(),
        400,
    ),
    ("Transfer-Encoding chunkedx", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunkedx\r\n\r\n".encode(), 400),
    (
        "Transfer-Encoding in HTTP/1.0",
        f"POST / HTTP/1.0\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode(),
        400,
    ),
    ("Transfer_Encoding look-alike", f"POST / HTTP/1.1\r\n{H}Transfer_Encoding: chunked\r\n\r\n".encode(), 400),
    (
        "chunk size hex overflow",
        f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n".encode(),
        400,
    ),
    (
        "negative chunk size",
        f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n".encode(),
        400,
    ),
    (
        "space in chunk size",
        f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n1 0\r\nx\r\n0\r\n\r\n".encode(),
        400,
    ),
    (
        "missing CRLF after chunk data",
        f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n".encode(),
        400,
    ),
    ("obs-fold continuation line", f"GET / HTTP/1.1\r\n{H}X-A: one\r\n two\r\n\r\n".encode(), 400),
    ("whitespace before colon", f"GET / HTTP/1.1\r\n{H}X-A : one\r\n\r\n".encode(), 400),
    ("bare CR in request line", f"GET /\r HTTP/1.1\r\n{H}\r\n".encode(), 400),
    ("bare LF in request line", f"GET / HTTP/1.1\n{H}\r\n".encode(), 400),
    ("bare CR in header", f"GET / HTTP/1.1\r\n{H}X-A: a\rb\r\n\r\n".encode(), 400),
    ("bare LF in header", f"GET / HTTP/1.1\r\n{H}X-A: a\nX-B: b\r\n\r\n".encode(), 400),
    ("NUL in header value", f"GET / HTTP/1.1\r\n{H}X-A: a\x00b\r\n\r\n".encode(), 400),
    ("NUL in request target", f"GET /a\x00b HTTP/1.1\r\n{H}\r\n".encode(), 400),
    ("invalid method token", f"G(ET / HTTP/1.1\r\n{H}\r\n".encode(), 400),
    ("lowercase method", f"get / HTTP/1.1\r\n{H}\r\n".encode(), 400),
    ("absolute-form target", f"GET http://evil.example/ HTTP/1.1\r\n{H}\r\n".encode(), 400),
    ("relative target", f"GET a/b HTTP/1.1\r\n{H}\r\n".encode(), 400),
    ("fragment in target", f"GET /a#b HTTP/1.1\r\n{H}\r\n".encode(), 400),
    ("asterisk target outside OPTIONS", f"GET * HTTP/1.1\r\n{H}\r\n".encode(), 400),
    ("HTTP/1.2", f"GET / HTTP/1.2\r\n{H}\r\n".encode(), 400),
    ("HTTP/2.0", f"GET / HTTP/2.0\r\n{H}\r\n".encode(), 400),
    ("HTTP/0.9 with version", b"GET / HTTP/0.9\r\n\r\n", 400),
    ("HTTP/0.9 without version", b"GET /\r\n\r\n", 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("missing Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Host headers", f"GET / HTTP/1.1\r\n{H}{H}\r\n".encode(), 400),
    ("request line over the limit", f"GET /{'a' * 3000} HTTP/1.1\r\n{H}\r\n".encode(), 414),
    ("header over the limit", f"GET / HTTP/1.1\r\n{H}X-Big: {'b' * 5000}\r\n\r\n".encode(), 431),
    (
        "unsupported coding before chunked (501)",
        f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".encode(),
        501,
    ),
]


@pytest.mark.parametrize("name,raw,status", CASES, ids=[c[0] for c in CASES])
def test_refused_and_closed(server: ServerProcess, name: str, raw: bytes, status: int) -> None:
    with RawConn(server.port) as c:
        c.send(raw)
        resp = c.read_response()
        assert resp.status == status, f"{name}: got {resp.status} {resp.body[:200]!r}"
        assert resp.header("connection") == "close"
        assert c.read_until_closed() == b"", "the connection must be closed after the refusal"
    assert served_normally(server.port)


def test_smuggled_second_request_is_never_answered(server: ServerProcess) -> None:
    """CL.TE: a request hidden in a body framed two ways must not be served."""
    hidden = f"GET /big?size=7 HTTP/1.1\r\n{H}\r\n"
    body = f"0\r\n\r\n{hidden}"
    raw = f"POST / HTTP/1.1\r\n{H}Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n{body}".encode()
    with RawConn(server.port) as c:
        c.send(raw)
        data = c.read_until_closed()
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 400 ")
    assert b"xxxxxxx" not in data
