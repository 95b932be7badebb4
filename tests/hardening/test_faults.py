"""Faults: clients that go away, shutdown under load."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.hardening.conftest import APP, served_normally
from tests.server.conftest import ServerProcess, start_server


def test_client_disconnects_mid_request(server: ServerProcess) -> None:
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 5000)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"GET /big HTTP/1.1\r\nHo")
    assert served_normally(server.port)


def test_client_disconnects_mid_response(server: ServerProcess) -> None:
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.sendall(b"GET /big?size=20000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(1024).startswith(b"HTTP/1.1 200 ")
    # Also while an async handler is still running.
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /slow?seconds=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.4)
    assert served_normally(server.port)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_graceful_shutdown_under_load_drops_no_request_in_flight() -> None:
    with start_server(APP) as srv:
        wrk = subprocess.Popen(
            ["wrk", "-t1", "-c32", "-d4s", "--timeout", "3s", f"http://127.0.0.1:{srv.port}/slow?seconds=0.05"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(1.5)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(15) == 0
        out = wrk.communicate(timeout=30)[0]
    done = int(re.search(r"(\d+) requests in", out).group(1))
    assert done > 100, out
    # Every request the server took was answered 200: no 5xx, no reset while in flight.
    assert "Non-2xx" not in out, out
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:
        _connect, read, _write, timeout = map(int, errors.groups())
        assert timeout == 0, out
        # Idle keep-alive connections are closed at the stop; wrk counts a
        # close it sees while waiting to send as a read error, at most one
        # per connection.
        assert read <= 32, out


@pytest.mark.parametrize("path", ["/\\evil.example/", "//evil.example/"])
def test_trailing_slash_redirect_never_leaves_the_site(path: str) -> None:
    """A 307 to "//host" or "/\\host" would be an open redirect: 404 instead."""
    app = """
from catzilla import Catzilla
app = Catzilla(production=True)

@app.get("/{page}")
def page(page: str):
    return {"page": page}
"""
    with start_server(app) as srv:
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 404 "), data[:200]
        assert b"Location" not in data
        with socket.create_connection(("127.0.0.1", srv.port)) as s:  # an ordinary redirect still works
            s.sendall(b"GET /home/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(65536)
        assert data.startswith(b"HTTP/1.1 307 ") and b"Location: /home\r\n" in data
