"""`Connection: close` in its legal spellings ends the connection after the
first response, even with a second request already pipelined behind it.

llhttp 9.3.0 missed `close` followed by a TAB (kept the connection alive and
answered the pipelined request); 9.4.2 fixed it. Real sockets, raw bytes: the
header lines are written exactly as below.
"""

from __future__ import annotations

import pytest

from tests.server.conftest import RawConn, ServerProcess

SPELLINGS = {
    "close-tab": b"Connection: close\t",
    "tab-close": b"Connection:\tclose",
    "close-comma": b"Connection: close ,",
    "mixed-case": b"Connection: ClOsE",
    "plain": b"Connection: close",
}


@pytest.mark.parametrize("line", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_close_answers_once_and_closes(main_server: ServerProcess, line: bytes) -> None:
    first = b"GET / HTTP/1.1\r\nHost: testserver\r\n" + line + b"\r\n\r\n"
    second = b"GET /users HTTP/1.1\r\nHost: testserver\r\n\r\n"
    with RawConn(main_server.port) as c:
        c.send(first + second)  # one write: the second request is already there
        r = c.read_response()
        assert r.status == 200 and r.json() == {"hello": "world"}
        assert (r.header("connection") or "").lower() == "close"
        closed, rest = c.wait_closed(3)
        assert closed, "the connection stayed open after Connection: close"
        assert rest == b"", f"a second response was sent: {rest[:80]!r}"
