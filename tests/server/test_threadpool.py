"""Sync handlers that block run on the thread pool: marked threadpool=True, or
seen blocking the event loop once; other clients are served meanwhile."""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import pytest

from catzilla import Catzilla, HTTPException
from tests.server.conftest import HOST, serve_in_thread, spawn_server


def build(gate: threading.Event, ran: list[str]) -> Catzilla:
    app = Catzilla(threadpool_size=4)

    @app.get("/")
    def index() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    @app.get("/marked", threadpool=True)
    def marked(wait: float = 5.0) -> dict[str, str]:
        ran.append("marked")
        gate.wait(wait)
        return {"thread": threading.current_thread().name}

    @app.get("/sleepy")
    def sleepy(s: float = 0.2) -> dict[str, str]:
        time.sleep(s)
        return {"thread": threading.current_thread().name}

    @app.get("/pinned", threadpool=False)
    def pinned() -> dict[str, str]:
        time.sleep(0.05)
        return {"thread": threading.current_thread().name}

    @app.get("/fails", threadpool=True)
    def fails(kind: str) -> dict[str, str]:
        if kind == "http":
            raise HTTPException(status_code=418, detail="teapot")
        raise RuntimeError("secret internals")

    return app


def test_a_marked_handler_runs_on_the_pool_while_others_are_served() -> None:
    gate, ran = threading.Event(), []
    app = build(gate, ran)
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as client:
        result: list[httpx.Response] = []
        t = threading.Thread(target=lambda: result.append(httpx.get(srv.base_url + "/marked", timeout=10)))
        t.start()
        deadline = time.monotonic() + 5
        while "marked" not in ran:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # the marked handler blocks on the gate: the loop still answers
        assert client.get("/").json() == {"thread": "catzilla-test-server"}
        gate.set()
        t.join(10)
        assert result[0].status_code == 200
        assert result[0].json()["thread"].startswith("catzilla-pool-")


def test_a_handler_seen_blocking_moves_to_the_pool_once(caplog: pytest.LogCaptureFixture) -> None:
    app = build(threading.Event(), [])
    with (
        caplog.at_level(logging.WARNING, logger="catzilla"),
        serve_in_thread(app) as srv,
        httpx.Client(base_url=srv.base_url, timeout=10) as client,
    ):
        first = client.get("/sleepy").json()["thread"]
        later = [client.get("/sleepy").json()["thread"] for _ in range(3)]
        pinned = client.get("/pinned").json()["thread"]
    assert first == "catzilla-test-server"  # the first call ran on the loop and was seen asleep
    assert all(name.startswith("catzilla-pool-") for name in later)
    assert pinned == "catzilla-test-server"  # threadpool=False: never moved
    said = [r.getMessage() for r in caplog.records if "thread pool from now on" in r.getMessage()]
    assert said == [
        "GET /sleepy: its sync handler blocked the event loop; it runs on the thread pool from now on "
        "(threadpool=True on the route starts it there)"
    ]


def test_eight_blocking_handlers_do_not_stall_other_clients() -> None:
    app = Catzilla()

    @app.get("/")
    def index() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/block", threadpool=True)
    def block() -> dict[str, bool]:
        time.sleep(1.0)
        return {"ok": True}

    with serve_in_thread(app) as srv:
        answers: list[int] = []

        def blocked() -> None:
            answers.append(httpx.get(srv.base_url + "/block", timeout=10).status_code)

        threads = [threading.Thread(target=blocked) for _ in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        latencies = []
        with httpx.Client(base_url=srv.base_url, timeout=10) as client:
            while any(t.is_alive() for t in threads):
                start = time.perf_counter()
                assert client.get("/").status_code == 200
                latencies.append(time.perf_counter() - start)
        for t in threads:
            t.join()
        took = time.monotonic() - t0
    assert answers == [200] * 8
    assert took < 4  # side by side, not one after another (8 s)
    latencies.sort()
    assert latencies[int(len(latencies) * 0.95)] < 0.25


def test_failures_on_the_pool_are_answered_like_any_other() -> None:
    app = build(threading.Event(), [])
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as client:
        r = client.get("/fails?kind=http")
        assert r.status_code == 418 and r.json() == {"detail": "teapot"}
        r = client.get("/fails?kind=boom")
        assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
        assert "secret" not in r.text
        r = client.get("/marked?wait=oops")
        assert r.status_code == 422  # validation happens on the pool thread too


QUEUED_APP = """
import threading
from catzilla import Catzilla
app = Catzilla(threadpool_size=1)  # a fresh process: one pool thread
gate = threading.Event()

@app.get("/hold", threadpool=True)
def hold():
    print("ran hold", flush=True)
    gate.wait(5)
    return {"ok": True}

@app.get("/queued", threadpool=True)
def queued():
    print("ran queued", flush=True)
    return {"ok": True}

@app.get("/release")
def release():
    gate.set()
    return app.get_server_stats()
"""


def test_a_queued_call_whose_client_left_is_skipped() -> None:
    srv = spawn_server(QUEUED_APP)
    try:
        holder = socket.create_connection((HOST, srv.port), timeout=5)
        holder.sendall(b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
        srv.wait_for("ran hold", stream="stdout")
        leaver = socket.create_connection((HOST, srv.port), timeout=5)
        leaver.sendall(b"GET /queued HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.3)  # queued behind /hold on the only pool thread
        leaver.close()
        time.sleep(0.3)
        stats = httpx.get(f"http://{HOST}:{srv.port}/release", timeout=5).json()
        assert stats["abandoned"] == 1
        assert holder.recv(4096).startswith(b"HTTP/1.1 200")
        holder.close()
        assert httpx.get(f"http://{HOST}:{srv.port}/queued", timeout=5).status_code == 200
        assert srv.stop() == 0
        assert srv.stdout.count("ran queued") == 1  # only the second /queued ran
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(5)


def test_a_stop_does_not_wait_for_a_blocking_handler() -> None:
    app = Catzilla()
    release = threading.Event()

    @app.get("/stuck", threadpool=True)
    def stuck() -> dict[str, bool]:
        release.wait(30)
        return {"ok": True}

    try:
        with serve_in_thread(app, shutdown_timeout=0.5) as srv:
            s = socket.create_connection((HOST, srv.port), timeout=5)
            s.sendall(b"GET /stuck HTTP/1.1\r\nHost: a\r\n\r\n")
            time.sleep(0.2)
            t0 = time.monotonic()
            app.stop()
            srv.thread.join(10)
            took = time.monotonic() - t0
            data = s.recv(4096)
            s.close()
    finally:
        release.set()
    assert took < 3, f"listen() returned {took:.1f} s after stop() with shutdown_timeout=0.5"
    assert data.startswith(b"HTTP/1.1 503") and b"Connection: close" in data


@pytest.mark.parametrize(("value", "error"), [("yes", TypeError), (1, TypeError)])
def test_threadpool_must_be_a_bool_or_none(value: object, error: type[Exception]) -> None:
    app = Catzilla()
    with pytest.raises(error, match="threadpool"):
        app.get("/", threadpool=value)(lambda: {})


def test_threadpool_true_is_for_sync_handlers() -> None:
    app = Catzilla()

    async def handler() -> dict[str, bool]:
        return {}

    with pytest.raises(ValueError, match="threadpool=True is for sync handlers"):
        app.get("/", threadpool=True)(handler)


def test_threadpool_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threadpool_size"):
        Catzilla(threadpool_size=0)
