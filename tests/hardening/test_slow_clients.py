"""Slow and many clients: slowloris, backpressure.

Idle/partial timeouts and the connection limit are in tests/server/test_limits.py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from catzilla import Catzilla
from tests.hardening.conftest import APP
from tests.server.conftest import RawConn, serve_in_thread, start_server

SLOW_REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Padding: " + b"a" * 100 + b"\r\n\r\n"


def test_slowloris_does_not_stop_a_normal_client() -> None:
    """1,000 connections sending one header byte per second; a normal client is
    served at once all along, and the header timeout closes the slow ones."""
    with start_server(APP, listen="header_timeout=3") as srv:
        slow = []
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.setblocking(False)
            slow.append(s)
        latencies: list[float] = []
        start = time.monotonic()
        for second in range(3):
            for s in slow:
                with contextlib.suppress(OSError):  # the server may have closed it: that is allowed
                    s.send(SLOW_REQUEST[second : second + 1])
            t0 = time.monotonic()
            with RawConn(srv.port) as c:
                assert c.request("GET", "/").status == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(max(0.0, start + second + 1 - time.monotonic()))
        assert max(latencies) < 0.5, latencies
        # Past header_timeout (3 s from the first byte) every slow connection is closed.
        deadline = time.monotonic() + 5
        open_ = list(slow)
        while open_ and time.monotonic() < deadline:
            still = []
            for s in open_:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    still.append(s)
                    continue
                except OSError:
                    continue
                if data and not data.startswith(b"HTTP/1.1 408"):
                    pytest.fail(f"unexpected answer to a partial request: {data[:60]!r}")
                if data:
                    still.append(s)  # the 408 came; the close follows
            open_ = still
            time.sleep(0.05)
        for s in slow:
            s.close()
        assert not open_, f"{len(open_)} slow connections still open after the header timeout"
        with RawConn(srv.port) as c:
            assert c.request("GET", "/").status == 200


@pytest.mark.parametrize("use_jemalloc", [True, False])
def test_a_client_that_never_reads_does_not_make_the_server_buffer_without_bound(use_jemalloc: bool) -> None:
    app = Catzilla(use_jemalloc=use_jemalloc, production=True)

    @app.get("/big")
    def big() -> bytes:
        return b"x" * (1 << 20)

    limit = 2 << 20
    with serve_in_thread(app, max_write_buffer=limit) as srv:
        before = app.get_memory_stats()["arenas"]["response"]["allocated_bytes"]
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
        stop = threading.Event()

        def flood() -> None:  # 200 pipelined requests for 1 MiB each, never reading
            try:
                for _ in range(200):
                    if stop.is_set():
                        return
                    s.sendall(request)
            except OSError:
                pass

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        peak = 0
        for _ in range(30):
            time.sleep(0.05)
            peak = max(peak, app.get_memory_stats()["arenas"]["response"]["allocated_bytes"] - before)
        # Output is bounded by max_write_buffer plus one response (and the
        # serializer's growth), not by the 200 MiB asked for.
        assert peak <= limit + (3 << 20), peak
        with RawConn(srv.port) as c:  # everyone else is still served
            assert c.request("GET", "/big").status == 200
        stop.set()
        s.close()
        t.join(5)
