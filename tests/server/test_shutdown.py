"""Graceful shutdown: SIGINT/SIGTERM in a subprocess, app.stop() in-process."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time

import httpx
import pytest

from catzilla import Catzilla
from tests.server.conftest import RawConn, connect_refused, serve_in_thread, spawn_server

SLOW_APP = """
import asyncio
import sys
from catzilla import Catzilla
app = Catzilla()

@app.get("/slow")
async def slow(delay: float = 1.0, i: int = 0):
    print(f"START {i}", flush=True)
    await asyncio.sleep(delay)
    return {"done": i}

@app.get("/sync-slow")
def sync_slow():
    import time
    print("START sync", flush=True)
    time.sleep(1.0)
    return {"done": "sync"}

@app.get("/")
def index():
    return {"ok": True}
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_drains_in_flight_requests(sig: int) -> None:
    srv = spawn_server(SLOW_APP, listen="shutdown_timeout=5")
    try:
        idle = RawConn(srv.port)  # an idle keep-alive connection: closed at once
        assert idle.request("GET", "/").status == 200
        conns = [RawConn(srv.port) for _ in range(5)]
        for i, c in enumerate(conns):
            c.send(f"GET /slow?i={i} HTTP/1.1\r\nHost: x\r\n\r\n")
        srv.wait_for(r"START \d", stream="stdout", count=5, timeout=10)
        t0 = time.monotonic()
        srv.send_signal(sig)

        # new connections are refused while the five are still in flight
        refused = False
        while time.monotonic() - t0 < 0.8:
            if connect_refused(srv.port):
                refused = True
                break
            time.sleep(0.02)
        assert refused, "new connections were still accepted after the signal"
        assert not any(c.has_data() for c in conns), "in-flight requests were answered early"
        closed, _ = idle.wait_closed(2)
        assert closed, "an idle keep-alive connection was kept open during shutdown"

        for i, c in enumerate(conns):
            r = c.read_response(timeout=5)
            assert r.status == 200 and r.json() == {"done": i}
            assert r.header("connection") == "close"
            closed, rest = c.wait_closed(3)
            assert closed and rest == b""
        code = srv.proc.wait(5)
        elapsed = time.monotonic() - t0
        assert code == 0, f"exit code {code}; stderr:\n{srv.stderr[-2000:]}"
        assert elapsed < 5, f"exit took {elapsed:.2f}s, more than shutdown_timeout"
        assert "listen() returned" in srv.stdout
        for c in [*conns, idle]:
            c.close()
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(5)


def test_sigint_while_sync_handler_runs() -> None:
    srv = spawn_server(SLOW_APP, listen="shutdown_timeout=5")
    try:
        with RawConn(srv.port) as c:
            c.send(b"GET /sync-slow HTTP/1.1\r\nHost: x\r\n\r\n")
            srv.wait_for("START sync", stream="stdout")
            srv.send_signal(signal.SIGINT)
            r = c.read_response(timeout=5)
            assert r.status == 200 and r.json() == {"done": "sync"}
        assert srv.proc.wait(5) == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(5)


def test_shutdown_timeout_answers_503_to_long_requests() -> None:
    srv = spawn_server(SLOW_APP, listen="shutdown_timeout=0.5")
    try:
        with RawConn(srv.port) as c:
            c.send(b"GET /slow?delay=30 HTTP/1.1\r\nHost: x\r\n\r\n")
            srv.wait_for("START", stream="stdout")
            t0 = time.monotonic()
            srv.send_signal(signal.SIGINT)
            r = c.read_response(timeout=5)
            code = srv.proc.wait(10)
            elapsed = time.monotonic() - t0
            closed, _ = c.wait_closed(3)
        assert code == 0, f"exit code {code}; stderr:\n{srv.stderr[-2000:]}"
        assert 0.4 <= elapsed < 4, f"exit after {elapsed:.2f}s with shutdown_timeout=0.5"
        assert r.status == 503 and r.header("connection") == "close"
        assert r.json() == {"detail": "Service Unavailable"}
        assert closed
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(5)


def test_app_stop_from_another_thread() -> None:
    app = Catzilla()
    release = threading.Event()

    @app.get("/")
    def index():
        return {"ok": True}

    @app.get("/held")
    async def held():
        while not release.is_set():
            await asyncio.sleep(0.01)
        return {"held": "released"}

    with serve_in_thread(app) as srv:
        port = srv.port
        assert httpx.get(f"{srv.base_url}/", timeout=5).json() == {"ok": True}
        inflight = RawConn(port)
        inflight.send(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        app.stop()
        deadline = time.monotonic() + 3
        while not connect_refused(port):
            assert time.monotonic() < deadline, "still accepting after app.stop()"
            time.sleep(0.02)
        assert srv.thread.is_alive(), "listen() returned with a request in flight"
        release.set()
        r = inflight.read_response(timeout=5)
        assert r.status == 200 and r.json() == {"held": "released"}
        srv.thread.join(5)
        assert not srv.thread.is_alive(), "listen() did not return after the last request"
        assert app.port is None
        inflight.close()


def test_app_can_listen_again_after_stop() -> None:
    app = Catzilla()
    app.get("/")(lambda: {"round": "any"})
    for _ in range(2):
        with serve_in_thread(app) as srv:
            assert httpx.get(f"{srv.base_url}/", timeout=5).json() == {"round": "any"}


def test_stop_before_serving_returns_promptly() -> None:
    app = Catzilla()
    app.get("/")(lambda: 1)
    app.stop()  # before listen: listen() returns at once (graceful stop of nothing)
    t = threading.Thread(target=app.listen, kwargs={"port": 0}, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 5
    app.close()


def test_port_in_use_raises_oserror() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        app = Catzilla()
        with pytest.raises(OSError, match=str(port)):
            app.listen(port=port)
        app.close()


def test_requests_that_arrived_while_a_sync_handler_blocked_are_answered() -> None:
    srv = spawn_server(SLOW_APP, listen="shutdown_timeout=5")
    try:
        waiting = [RawConn(srv.port) for _ in range(3)]
        for c in waiting:  # open, accepted, idle keep-alive connections
            assert c.request("GET", "/").status == 200
        with RawConn(srv.port) as slow:
            slow.send(b"GET /sync-slow HTTP/1.1\r\nHost: x\r\n\r\n")
            srv.wait_for("START sync", stream="stdout")
            # These reach the server while its loop is held, the last ones
            # after the signal: the stop is seen first, they are still read.
            for c in waiting[:1]:
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            srv.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            for c in waiting[1:]:
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert slow.read_response(timeout=5).status == 200
        for c in waiting:
            r = c.read_response(timeout=5)
            assert r.status == 200 and r.json() == {"ok": True}
            assert c.wait_closed(3)[0]  # then closed: the server stops
            c.close()
        assert srv.proc.wait(5) == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(5)


def test_pipelined_requests_read_before_a_stop_are_all_answered() -> None:
    app = Catzilla()

    @app.get("/")
    def index(i: int = 0):
        return {"i": i}

    @app.get("/slow")
    async def slow():
        await asyncio.sleep(0.3)
        return {"slow": True}

    with serve_in_thread(app) as srv:
        c = RawConn(srv.port)
        c.send(
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /?i=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /?i=2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        time.sleep(0.1)
        app.stop()
        answers = [c.read_response(timeout=5) for _ in range(3)]
        assert [r.json() for r in answers] == [{"slow": True}, {"i": 1}, {"i": 2}]
        assert [r.header("connection") for r in answers] == [None, None, "close"]
        assert c.wait_closed(3)[0]
        c.close()
