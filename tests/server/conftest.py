"""Fixtures and helpers for the HTTP server tests: real sockets on 127.0.0.1.

- ``start_server(code, listen=...)``: run an app in a subprocess (the code
  defines ``app``; ``app.listen(...)`` is appended), learn its port from the
  banner on stderr, wait until it answers. As a context manager it sends
  SIGINT on exit and asserts exit code 0.
- ``serve_in_thread(app, **limits)``: the in-process variant (listen in a
  thread, stop with ``app.stop()``), for ``app.get_memory_stats()``.
- ``RawConn`` / ``raw_exchange`` / ``parse_responses``: a raw socket client
  that sends bytes and reads whole responses (framed by Content-Length).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.server import apps

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
BANNER_URL = re.compile(r"http://127\.0\.0\.1:(\d+)")
STOP_TIMEOUT = 15.0
# The app scripts of this test run; removed when the interpreter exits.
_SCRIPTS = tempfile.TemporaryDirectory(prefix="cz-server-tests-")


# ---- raw HTTP over sockets ------------------------------------------------------------


@dataclass
class HTTPResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # as sent (case kept), in order
    body: bytes
    raw_head: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        values = self.header_list(name)
        return values[-1] if values else default

    def header_list(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        import json

        return json.loads(self.body)


def _split_head(buf: bytes) -> tuple[bytes, bytes] | None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    return buf[: end + 4], buf[end + 4 :]


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    assert version.startswith("HTTP/1."), f"bad status line {lines[0]!r}"
    code, _, reason = rest.partition(" ")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        assert sep, f"bad header line {line!r} in {head!r}"
        headers.append((name, value.strip()))
    return int(code), reason, headers


def _body_length(status: int, headers: list[tuple[str, str]], head: bool) -> int | None:
    """Bytes of body that follow; None: until the peer closes."""
    if head or 100 <= status < 200 or status in (204, 304):
        return 0
    cl = [v for k, v in headers if k.lower() == "content-length"]
    if cl:
        assert len(cl) == 1, f"several Content-Length headers: {cl}"
        return int(cl[0])
    return None


def try_parse_response(buf: bytes, head: bool = False, closed: bool = False) -> tuple[HTTPResponse, bytes] | None:
    """One response from the front of buf, and the rest; None if incomplete."""
    parts = _split_head(buf)
    if parts is None:
        return None
    raw_head, rest = parts
    status, reason, headers = _parse_head(raw_head)
    n = _body_length(status, headers, head)
    if n is None:
        if not closed:
            return None
        n = len(rest)
    if len(rest) < n:
        return None
    return HTTPResponse(status, reason, headers, rest[:n], raw_head), rest[n:]


def parse_responses(data: bytes, head: bool | list[bool] = False) -> list[HTTPResponse]:
    """Every complete response in data (raises if bytes are left over).
    ``head``: True when answering HEAD (a list: one flag per response)."""
    out = []
    while data:
        h = head[len(out)] if isinstance(head, list) else head
        parsed = try_parse_response(data, h, closed=True)
        assert parsed is not None, f"incomplete response: {data[:300]!r}"
        resp, data = parsed
        out.append(resp)
    return out


class RawConn:
    """A TCP connection to the server that speaks bytes."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _recv(self, deadline: float) -> bool:
        """Read once; False at EOF (or reset)."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no data within the timeout; have {self.buf[:300]!r}")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except TimeoutError:
            raise TimeoutError(f"no data within the timeout; have {self.buf[:300]!r}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_response(self, head: bool = False, timeout: float | None = None) -> HTTPResponse:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            parsed = try_parse_response(self.buf, head, closed=self.eof)
            if parsed is not None:
                resp, self.buf = parsed
                return resp
            if not self._recv(deadline):
                parsed = try_parse_response(self.buf, head, closed=True)
                if parsed is None:
                    raise ConnectionError(f"peer closed before a complete response; got {self.buf[:300]!r}")
                resp, self.buf = parsed
                return resp

    def read_exactly(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self._recv(deadline):
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until_closed(self, timeout: float | None = None) -> bytes:
        """Everything until the peer closes; TimeoutError if it does not."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._recv(deadline):
            pass
        out, self.buf = self.buf, b""
        return out

    def wait_closed(self, timeout: float) -> tuple[bool, bytes]:
        """(closed within timeout, bytes received meanwhile)."""
        try:
            data = self.read_until_closed(timeout)
            return True, data
        except TimeoutError:
            data, self.buf = self.buf, b""
            return False, data

    def has_data(self, wait: float = 0.0) -> bool:
        """True if bytes (or EOF) arrived, without consuming anything."""
        if self.buf or self.eof:
            return True
        self.sock.settimeout(wait if wait > 0 else 0.000001)
        try:
            self.sock.recv(1, socket.MSG_PEEK)  # a byte, or b"" at EOF
            return True
        except (TimeoutError, BlockingIOError):
            return False
        except ConnectionResetError:
            return True

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"", head: bool | None = None
    ) -> HTTPResponse:
        self.send(build_request(method, path, headers, body))
        return self.read_response(head=method == "HEAD" if head is None else head)


def build_request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes | str = b"", version: str = "HTTP/1.1"
) -> bytes:
    if isinstance(body, str):
        body = body.encode()
    hs = {"Host": "testserver"}
    hs.update(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in hs):
        hs["Content-Length"] = str(len(body))
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in hs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def raw_exchange(port: int, data: bytes | str, n: int | None = None, head: bool = False, timeout: float = 5.0) -> bytes:
    """Connect, send data, read until the peer closes or n complete responses
    have been read; return the raw bytes received."""
    with RawConn(port, timeout) as c:
        c.send(data)
        if n is None:
            return c.read_until_closed()
        got = b""
        for _ in range(n):
            resp = c.read_response(head=head)
            got += resp.raw_head + resp.body
        return got


def wait_until_answering(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Until a request gets a response: the loop runs (not just the backlog)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with RawConn(port, timeout=2) as c:
                c.request("GET", "/__ready__")
                return
        except (OSError, ConnectionError) as e:
            last = e
            time.sleep(0.05)
    raise TimeoutError(f"server on port {port} did not answer: {last!r}")


def connect_refused(port: int) -> bool:
    try:
        s = socket.create_connection((HOST, port), timeout=1)
    except (ConnectionRefusedError, ConnectionResetError):
        # a reset while connecting is the listener closing under the handshake:
        # the connection was never accepted either
        return True
    s.close()
    return False


def port_closes(port: int, timeout: float = 5.0) -> bool:
    """Whether the port stops answering within `timeout`: a process whose main
    thread reads as exited may still be closing its files for a few
    milliseconds (its other threads finish exiting after it)."""
    deadline = time.monotonic() + timeout
    while not connect_refused(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---- servers in a subprocess --------------------------------------------------------


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    port: int = 0
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __iter__(self):
        return iter((self.proc, self.base_url, self.port))

    @property
    def stdout(self) -> str:
        with self.cond:
            return "".join(self.out)

    @property
    def stderr(self) -> str:
        with self.cond:
            return "".join(self.err)

    def _drain(self, stream, sink: list[str]) -> None:
        for line in stream:
            with self.cond:
                sink.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def start_drains(self) -> None:
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True).start()

    def wait_for(self, pattern: str, stream: str = "stderr", timeout: float = 15.0, count: int = 1) -> list[re.Match]:
        """Wait until `pattern` has matched `count` times in the stream's text."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                text = "".join(self.out if stream == "stdout" else self.err)
                found = list(rx.finditer(text))
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{pattern!r} x{count} not seen on {stream} within {timeout}s; "
                        f"exit={self.proc.poll()} stderr={''.join(self.err)[-2000:]!r}"
                    )
                self.cond.wait(min(left, 0.1))

    def send_signal(self, sig: int = signal.SIGINT) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = STOP_TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"server did not exit within {timeout}s of signal {sig}; stderr:\n{self.stderr[-3000:]}"
            ) from None


LISTEN_TAIL = """
app.listen(port={port}, host="127.0.0.1"{listen})
print("listen() returned", flush=True)
"""


def spawn_server(code: str, listen: str = "", port: int = 0, wait: bool = True, timeout: float = 20.0) -> ServerProcess:
    """Start `code` (which defines `app`) + app.listen(port, **listen) in a
    subprocess; return once it answers HTTP."""
    fd, name = tempfile.mkstemp(prefix="app_", suffix=".py", dir=_SCRIPTS.name)
    os.close(fd)
    script = Path(name)
    extra = f", {listen}" if listen else ""
    script.write_text(textwrap.dedent(code) + LISTEN_TAIL.format(port=port, listen=extra))
    proc = subprocess.Popen(
        [sys.executable, "-u", str(script)],
        cwd=str(REPO),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    srv = ServerProcess(proc)
    srv.start_drains()
    if not wait:
        return srv
    try:
        m = srv.wait_for(BANNER_URL.pattern, timeout=timeout)[0]
        srv.port = int(m.group(1))
        wait_until_answering(srv.port, timeout=timeout, proc=proc)
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise
    return srv


@contextlib.contextmanager
def start_server(code: str, listen: str = "", port: int = 0) -> Iterator[ServerProcess]:
    """spawn_server as a context: SIGINT on exit, exit code 0 asserted."""
    srv = spawn_server(code, listen, port)
    try:
        yield srv
    finally:
        already = srv.proc.poll() is not None
        code_ = srv.stop()
        if not already:
            assert code_ == 0, f"server exit code {code_} after SIGINT; stderr:\n{srv.stderr[-3000:]}"


@pytest.fixture(scope="module")
def main_server() -> Iterator[ServerProcess]:
    """The shared app with many routes (tests/server/apps.py MAIN)."""
    with start_server(apps.MAIN) as srv:
        yield srv


@pytest.fixture(scope="module")
def limits_server() -> Iterator[ServerProcess]:
    """Small limits and tiny timeouts."""
    with start_server(apps.SMALL, listen=apps.SMALL_LIMITS) as srv:
        yield srv


# ---- servers in this process ----------------------------------------------------------


@dataclass
class InProcessServer:
    app: object
    thread: threading.Thread
    port: int
    errors: list[BaseException]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextlib.contextmanager
def serve_in_thread(app, timeout: float = 15.0, **limits) -> Iterator[InProcessServer]:
    """app.listen(port=0) in a thread; app.stop() and join on exit."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            app.listen(port=0, host=HOST, **limits)
        except BaseException as e:  # reported by the context
            errors.append(e)

    t = threading.Thread(target=run, name="catzilla-test-server", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while app.port is None:
        assert not errors, f"listen() failed: {errors[0]!r}"
        assert t.is_alive(), "listen() returned before serving"
        assert time.monotonic() < deadline, "server did not bind"
        time.sleep(0.01)
    srv = InProcessServer(app, t, app.port, errors)
    wait_until_answering(srv.port, timeout=timeout)
    try:
        yield srv
    finally:
        app.stop()
        t.join(STOP_TIMEOUT)
        alive = t.is_alive()
        app.close()
        assert not alive, "listen() did not return within the timeout after app.stop()"
        assert not errors, f"listen() raised {errors[0]!r}"
