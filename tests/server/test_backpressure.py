"""Pipelined requests whose responses exceed max_write_buffer (a slow reader).

When queued output passes max_write_buffer the server stops parsing; the
rest of the pipeline is parsed and dispatched later, when a write completes.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from tests.server.conftest import RawConn, ServerProcess, build_request, spawn_server

APP = """
import threading
import time
from catzilla import Catzilla

app = Catzilla(auto_memory_tuning=False)
BIG = b"0123456789abcdef" * 16384  # 256 KiB


@app.get("/big")
def big():
    return BIG


@app.get("/small/{i}")
def small(i: int):
    return {"small": i}


def heartbeat():
    n = 0
    while True:
        n += 1
        print(f"beat {n}", flush=True)
        time.sleep(0.05)


threading.Thread(target=heartbeat, daemon=True).start()
"""
LIMITS = "max_write_buffer=65536, shutdown_timeout=2"
N = 8


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    srv = spawn_server(APP, listen=LIMITS)
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(5)


def slow_reader_burst(port: int) -> None:
    """N pipelined requests in one write, big and small alternating, read
    slowly; every response must arrive intact and in order."""
    with RawConn(port, timeout=20) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(b"".join(build_request("GET", "/big" if i % 2 == 0 else f"/small/{i}") for i in range(N)))
        time.sleep(0.3)  # let the server fill its buffers
        rs = [c.read_response(timeout=20) for _ in range(N)]
    for i, r in enumerate(rs):
        assert r.status == 200
        if i % 2 == 0:
            assert r.body == b"0123456789abcdef" * 16384
        else:
            assert r.json() == {"small": i}


def beats(srv: ServerProcess) -> int:
    found = re.findall(r"beat (\d+)", srv.stdout)
    return int(found[-1]) if found else 0


def test_slow_reader_gets_every_pipelined_response(server: ServerProcess) -> None:
    slow_reader_burst(server.port)
    with RawConn(server.port) as c:  # and the server goes on serving
        assert c.request("GET", "/small/1").json() == {"small": 1}


def test_python_threads_run_after_backpressured_pipeline(server: ServerProcess) -> None:
    """After the burst the server is idle: its other Python threads (here a
    heartbeat; in real apps the asyncio thread and the memory monitor) must
    get the GIL."""
    server.wait_for(r"beat 3\b", stream="stdout")
    slow_reader_burst(server.port)
    time.sleep(0.2)
    before = beats(server)
    time.sleep(1.0)
    after = beats(server)
    assert after - before >= 5, (
        f"heartbeat thread ran {after - before} times in 1 s after the burst: the loop thread kept the GIL while idle"
    )


def test_sigint_after_backpressured_pipeline_exits(server: ServerProcess) -> None:
    slow_reader_burst(server.port)
    server.send_signal(signal.SIGINT)
    try:
        code = server.proc.wait(6)
    except Exception:
        raise AssertionError(
            "server hung after SIGINT (shutdown_timeout=2) following a backpressured pipeline"
        ) from None
    assert code == 0
