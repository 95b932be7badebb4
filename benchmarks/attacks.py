"""Attacks on the server's connections, and what a normal client sees meanwhile.

    python -m benchmarks.attacks [--connections 1000] [--duration 10] [--scenario all|NAME[,NAME]]
                                 [--max-connections 500] [--rate 20] [--json PATH]

Scenarios (each against a fresh server: benchmarks/apps/attack_app.py in a
subprocess, loopback only, with `max_connections` below the attack's size):

- slowloris: each attacker sends a request head one byte per interval and
  never finishes it.
- slow-body: a complete `POST /upload` head with `Content-Length: 512 KiB`,
  then one body byte per interval.
- slow-read: a tiny `SO_RCVBUF`, `GET /big` (1 MiB) pipelined a few times,
  then a few bytes read per interval (what `slowhttptest -X` does).
- abandon: N requests to `GET /wait` (an async handler that sleeps for an
  hour), then every client closes its socket.

The three slow attacks keep N attackers going: one whose connection the
server closes connects again. Meanwhile two normal clients send `GET /` at
a steady rate from their own processes, one opening a new connection per
request, one over a keep-alive connection (it reconnects after a failure).
A request fails when it is refused, closed or reset, not answered 200, or
not answered within the timeout; latency runs from the request's send (the
connect, for a new connection) to the answer's last byte. The server's RSS
(VmRSS) is sampled from idle (after a warm-up) to the end. For abandon: how
many of the started handlers got `CancelledError` (and ran their `finally`),
and how many of the server port's sockets are in CLOSE-WAIT at the end.

Not part of `make test`; `make test-attacks` runs every scenario at 1,000
connections. tests/hardening/test_attacks.py runs them small, with the
goals as assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "benchmarks" / "apps" / "attack_app.py"
HOST = "127.0.0.1"
MiB = 1 << 20
SCENARIOS = ("slowloris", "slow-body", "slow-read", "abandon")
BANNER = re.compile(r"serving http://127\.0\.0\.1:(\d+)")

# What each attacker does per interval.
SLOW_BODY_LENGTH = 512 * 1024  # under the default max_body_size (1 MiB): the server must read it
SLOW_READ_PIPELINE = 4  # 4 MiB asked per connection: the default max_write_buffer
SLOW_READ_RCVBUF = 1024  # the kernel's minimum is about twice this: a window of ~1 KiB
SLOW_READ_BYTES = 32
CONNECT_TIMEOUT = 5.0
# Stops must not wait out the default 10 s for handlers an abandon left pending.
SERVER_LIMITS: dict[str, float] = {"shutdown_timeout": 2}


# ---- the server ---------------------------------------------------------------------------------------


def raise_fd_limit() -> None:
    """1,000 attackers and their reconnections need more than the usual 1,024 fds;
    the server subprocess inherits the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tcp_states(port: int) -> Counter[str]:
    """States (hex, as in /proc/net/tcp: 01 established, 08 CLOSE-WAIT, 0A listen)
    of this machine's sockets whose local port is `port`: the server's side."""
    states: Counter[str] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            next(f)  # the column titles
            for line in f:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port:
                    states[cols[3]] += 1
    return states


def close_wait_count(port: int, within: float = 1.0) -> int:
    """Server-side connections in CLOSE-WAIT: the client closed, the server did not.

    Polled for up to `within` seconds: a connection the client closed a
    moment ago is in CLOSE-WAIT until the server's loop reads the FIN, which
    on a loaded machine takes a while; one that stays there is a leak.
    """
    deadline = time.monotonic() + within
    while True:
        n = tcp_states(port)["08"]
        if n == 0 or time.monotonic() >= deadline:
            return n
        time.sleep(0.05)


class AttackServer:
    """benchmarks/apps/attack_app.py in a subprocess, with the given listen() limits."""

    def __init__(self, limits: dict[str, float]) -> None:
        self.limits = {**SERVER_LIMITS, **limits}
        self.port = 0
        self.stderr: list[str] = []
        self.exit: str = "running"
        self._seen = threading.Condition()
        env = dict(os.environ, ATTACK_PORT="0", ATTACK_LISTEN=json.dumps(self.limits))
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(APP)],
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl+C at the terminal is the harness's, not the server's
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._seen:
                self.stderr.append(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._seen:
            while not self.port:
                match = BANNER.search("".join(self.stderr))
                if match:
                    self.port = int(match.group(1))
                    break
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the attack app did not start: {''.join(self.stderr)[-2000:]}")
                self._seen.wait(0.1)
        while True:  # serving, not just bound
            try:
                if http_get(self.port, "/", timeout=2.0)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the attack app on port {self.port} does not answer")
            time.sleep(0.05)

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def stop(self, timeout: float = 10.0) -> str:
        """SIGINT, then SIGKILL after `timeout`: a wedged server must not hang the caller."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.exit = f"killed: no exit within {timeout:g} s of SIGINT"
                return self.exit
        self.exit = f"exit {self.proc.returncode}"
        return self.exit

    def __enter__(self) -> AttackServer:
        try:
            self.wait_ready()
        except BaseException:
            self.proc.kill()
            self.proc.wait(5)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RSSSampler:
    """The server's VmRSS every 50 ms in a thread; the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):  # the server exited
                return

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# ---- plain HTTP over blocking sockets (the normal client) -------------------------------------------


class RequestFailed(Exception):
    """kind: refused, closed, reset, timeout, status NNN."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _read_response(sock: socket.socket, deadline: float) -> tuple[int, bytes]:
    buf = b""

    def more() -> None:
        nonlocal buf
        left = deadline - time.monotonic()
        if left <= 0:
            raise RequestFailed("timeout")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise RequestFailed("timeout") from None
        except ConnectionResetError:
            raise RequestFailed("reset") from None
        if not chunk:
            raise RequestFailed("closed")
        buf += chunk

    while b"\r\n\r\n" not in buf:
        more()
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        more()
    return status, buf[:length]


def _connect(port: int, deadline: float) -> socket.socket:
    try:
        sock = socket.create_connection((HOST, port), timeout=max(0.001, deadline - time.monotonic()))
    except ConnectionRefusedError:
        raise RequestFailed("refused") from None
    except TimeoutError:
        raise RequestFailed("timeout") from None
    except OSError as e:
        raise RequestFailed(type(e).__name__) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _exchange(sock: socket.socket, path: str, deadline: float) -> tuple[int, bytes]:
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: normal\r\n\r\n".encode())
    except TimeoutError:
        raise RequestFailed("timeout") from None
    except OSError:  # the server closed it: EPIPE, ECONNRESET
        raise RequestFailed("reset") from None
    return _read_response(sock, deadline)


def http_get(port: int, path: str, timeout: float) -> tuple[int, bytes]:
    """One request on a new connection; RequestFailed (an OSError's sibling) or OSError on failure."""
    deadline = time.monotonic() + timeout
    with _connect(port, deadline) as sock:
        return _exchange(sock, path, deadline)


@dataclass
class ClientResult:
    mode: str  # "new connection" or "keep-alive"
    requests: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, of the answered ones
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def percentile(self, q: float) -> float | None:
        return percentile(self.latencies, q)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def normal_client(
    port: int, keep_alive: bool, start_at: float, rate: float, duration: float, timeout: float
) -> ClientResult:
    """`GET /` at `rate` per second for `duration` seconds from `start_at` (time.time()).
    Runs in its own process, so that the attackers' event loop does not delay it.
    The keep-alive client connects at once, before the attack: it stands for the
    users already connected (the new-connection client for those arriving)."""
    result = ClientResult("keep-alive" if keep_alive else "new connection")
    lock = threading.Lock()

    def record(started: float, outcome: tuple[int, bytes] | RequestFailed) -> None:
        with lock:
            result.requests += 1
            if isinstance(outcome, RequestFailed):
                result.failures[outcome.kind] += 1
            elif outcome[0] != 200:
                result.failures[f"status {outcome[0]}"] += 1
            else:
                result.latencies.append(time.monotonic() - started)

    def one_new() -> None:
        started = time.monotonic()
        outcome: tuple[int, bytes] | RequestFailed
        try:
            outcome = http_get(port, "/", timeout)
        except RequestFailed as e:
            outcome = e
        record(started, outcome)

    threads: list[threading.Thread] = []
    sock: socket.socket | None = None
    try:
        if keep_alive:
            sock = _connect(port, time.monotonic() + timeout)
            while time.time() < start_at:
                # unrecorded requests: the connection stays under keepalive_timeout
                _exchange(sock, "/", time.monotonic() + timeout)
                time.sleep(max(0.0, min(1.0, start_at - time.time())))
        start = time.monotonic() + max(0.0, start_at - time.time())
        for i in range(max(1, round(rate * duration))):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            if not keep_alive:
                # A thread per request keeps the rate when an answer is slow.
                t = threading.Thread(target=one_new, daemon=True)
                t.start()
                threads.append(t)
                continue
            started = time.monotonic()
            deadline = started + timeout
            outcome: tuple[int, bytes] | RequestFailed
            try:
                if sock is None:
                    sock = _connect(port, deadline)
                outcome = _exchange(sock, "/", deadline)
            except RequestFailed as e:
                outcome = e
                if sock is not None:
                    sock.close()
                    sock = None
            record(started, outcome)
    finally:
        if sock is not None:
            sock.close()
        for t in threads:
            t.join(timeout + 1)
    return result


def client_pool() -> ProcessPoolExecutor:
    """Two processes for the two normal clients, started (spawned: no copy of the
    harness's sockets or threads) before any attack."""
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    for f in [pool.submit(time.sleep, 0.2) for _ in range(2)]:
        f.result()
    return pool


def start_normal_clients(
    pool: ProcessPoolExecutor, port: int, s: Settings, start_at: float
) -> asyncio.Future[list[ClientResult]]:
    """Both normal clients; await the result once the attack is under way."""
    loop = asyncio.get_running_loop()
    jobs = [
        loop.run_in_executor(pool, normal_client, port, ka, start_at, s.rate, s.duration, s.timeout)
        for ka in (False, True)
    ]
    return asyncio.ensure_future(asyncio.gather(*jobs))


async def normal_results(
    clients: asyncio.Future[list[ClientResult]], s: Settings, start_at: float
) -> list[ClientResult]:
    left = start_at - time.time() + s.duration + 2 * s.timeout + 30
    return list(await asyncio.wait_for(clients, max(1.0, left)))


# ---- the slow attacks ---------------------------------------------------------------------------------


@dataclass
class AttackStats:
    attackers: int = 0
    connects: int = 0
    connect_failures: int = 0
    closed_by_server: int = 0
    # what the server said before it closed a connection: a status code, or "nothing"
    answers: Counter[str] = field(default_factory=Counter)
    open_peak: int = 0
    open_now: int = 0


def _slowloris_bytes() -> bytes:
    """A head that never ends: header after header, no blank line."""
    lines = b"".join(b"X-Slow-%d: %d\r\n" % (i, i) for i in range(1000))  # hours at a byte a second
    return b"GET / HTTP/1.1\r\nHost: attacker\r\n" + lines


SLOWLORIS_HEAD = _slowloris_bytes()
SLOW_BODY_HEAD = b"POST /upload HTTP/1.1\r\nHost: attacker\r\nContent-Length: %d\r\n\r\n" % SLOW_BODY_LENGTH
SLOW_READ_REQUESTS = b"GET /big HTTP/1.1\r\nHost: attacker\r\n\r\n" * SLOW_READ_PIPELINE


class _Closed(Exception):
    """The server closed the connection."""


class SlowAttack:
    """`n` attackers, each holding one connection that trickles (or drains) one
    piece per `interval`, connecting again when the server closes it."""

    def __init__(self, scenario: str, port: int, n: int, interval: float = 1.0, ramp: float = 1.0) -> None:
        if scenario not in ("slowloris", "slow-body", "slow-read"):
            raise ValueError(f"not a slow attack: {scenario}")
        self.scenario = scenario
        self.port = port
        self.n = n
        self.interval = interval
        self.ramp = ramp  # seconds over which the first connections are opened: no SYN flood
        self.stats = AttackStats(attackers=n)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._attacker(i)) for i in range(self.n)]

    async def stop(self) -> None:
        # A flag as well as the cancel: Python 3.10's wait_for can swallow a
        # cancellation that meets its own timeout, and the loop would go on.
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.wait(self._tasks, timeout=10)

    async def _attacker(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.ramp * index / self.n)
        while not self._stopping:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            if self.scenario == "slow-read":  # before connect: the window is agreed in the handshake
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READ_RCVBUF)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (HOST, self.port)), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                self.stats.connect_failures += 1
                sock.close()
                await asyncio.sleep(self.interval)
                continue
            self.stats.connects += 1
            self.stats.open_now += 1
            self.stats.open_peak = max(self.stats.open_peak, self.stats.open_now)
            try:
                answer = await self._hold(sock)
                self.stats.closed_by_server += 1
                self.stats.answers[answer] += 1
            finally:
                self.stats.open_now -= 1
                sock.close()
            # jittered, so that refused attackers do not come back in step
            await asyncio.sleep(self.interval * (0.5 + random.random()))

    async def _hold(self, sock: socket.socket) -> str:
        """Until the server closes the connection; what it answered first."""
        first = b""
        sent = 0
        if self.scenario == "slow-body":
            await asyncio.get_running_loop().sock_sendall(sock, SLOW_BODY_HEAD)
        elif self.scenario == "slow-read":
            await asyncio.get_running_loop().sock_sendall(sock, SLOW_READ_REQUESTS)
        await asyncio.sleep(self.interval * random.random())  # spread the trickles over the interval
        try:
            while not self._stopping:
                # Non-blocking checks once per interval cost the attacker less
                # than a reader per socket.
                try:
                    data = sock.recv(SLOW_READ_BYTES if self.scenario == "slow-read" else 65536)
                    if not data:
                        raise _Closed
                    if not first:
                        first = data
                except BlockingIOError:
                    pass
                with contextlib.suppress(BlockingIOError):  # a full send buffer: try again next time
                    if self.scenario == "slowloris":
                        sent += sock.send(SLOWLORIS_HEAD[sent % len(SLOWLORIS_HEAD) :][:1])
                    elif self.scenario == "slow-body" and sent < SLOW_BODY_LENGTH - 1:  # never the last byte
                        sent += sock.send(b"b")
                await asyncio.sleep(self.interval)
        except _Closed:
            pass
        except OSError:  # reset, broken pipe: closed all the same
            pass
        return first.split(b" ", 2)[1].decode("latin-1", "replace") if first.startswith(b"HTTP/") else "nothing"


# ---- abandoned requests ---------------------------------------------------------------------------------


@dataclass
class Counters:
    started: int
    cancelled: int
    finally_ran: int


class Control:
    """A keep-alive connection opened before an attack, so that /counters can be
    read even when the attack holds every other slot."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._pinger: asyncio.Task[None] | None = None
        self._base = Counters(0, 0, 0)

    async def open(self) -> Control:
        self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 5)
        # Counts from now on: the warm-up ran /wait too.
        self._base = await self.counters() or self._base
        # Pings keep it under keepalive_timeout (5 s) for the whole scenario.
        self._pinger = asyncio.create_task(self._ping())
        return self

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.counters()

    async def counters(self) -> Counters | None:
        """None when the connection is lost (then a new one is tried next time)."""
        async with self._lock:
            try:
                if self._writer is None:
                    self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 2)
                assert self._reader is not None and self._writer is not None
                self._writer.write(b"GET /counters HTTP/1.1\r\nHost: control\r\n\r\n")
                await asyncio.wait_for(self._writer.drain(), 2)
                head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), 2)
                found = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if found is None:
                    raise ValueError(f"no Content-Length in {head!r}")
                length = int(found.group(1))
                body = json.loads(await asyncio.wait_for(self._reader.readexactly(length), 2))
                b = self._base
                return Counters(
                    body["started"] - b.started, body["cancelled"] - b.cancelled, body["finally"] - b.finally_ran
                )
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError):
                if self._writer is not None:
                    self._writer.close()
                self._reader = self._writer = None
                return None

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        if self._writer is not None:
            self._writer.close()


@dataclass
class AbandonStats:
    sent: int = 0
    refused: int = 0  # closed by the server before the client closed it: no slot
    started: int | None = None  # handlers running when the clients closed


async def abandon(port: int, n: int, control: Control | None, settle: float = 5.0) -> AbandonStats:
    """n connections send GET /wait; once the handlers have started (the control
    connection says so, or `settle` has passed), every client closes its socket."""
    loop = asyncio.get_running_loop()
    stats = AbandonStats()
    socks: list[socket.socket] = []

    async def one(index: int) -> None:
        await asyncio.sleep(index / n)  # over one second: no SYN flood
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        socks.append(sock)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), CONNECT_TIMEOUT)
            await asyncio.wait_for(loop.sock_sendall(sock, b"GET /wait HTTP/1.1\r\nHost: abandon\r\n\r\n"), 5)
            stats.sent += 1
        except (OSError, asyncio.TimeoutError):
            pass

    await asyncio.gather(*(one(i) for i in range(n)))
    deadline = time.monotonic() + settle
    last: Counters | None = None
    if control is None:
        await asyncio.sleep(min(settle, 1.0))
    seen: list[int] = []
    while control is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = await control.counters()
        if now is None:
            continue
        last = now
        seen.append(now.started)
        if len(seen) >= 3 and seen[-1] == seen[-3] > 0:
            break  # none started for half a second: all that will start have
    stats.started = last.started if last is not None else None
    for sock in socks:
        try:
            if sock.recv(1) == b"":
                stats.refused += 1
        except BlockingIOError:
            pass
        except OSError:
            stats.refused += 1
        sock.close()  # a FIN, as a client that goes away sends
    return stats


async def watch_cancellations(control: Control, started: int, within: float) -> Counters | None:
    """Poll /counters until every started handler ran its finally, or `within` passes."""
    deadline = time.monotonic() + within
    now = await control.counters()
    while time.monotonic() < deadline and (now is None or now.finally_ran < started):
        await asyncio.sleep(0.1)
        now = await control.counters() or now
    return now


# ---- scenarios ---------------------------------------------------------------------------------------------


@dataclass
class Settings:
    connections: int = 1000
    duration: float = 10.0
    max_connections: int = 500
    rate: float = 20.0  # requests per second of each normal client
    timeout: float = 5.0  # of each normal request
    interval: float = 1.0  # between an attacker's pieces
    settle: float = 1.0  # after the attack's ramp, before the normal clients start


@dataclass
class ScenarioResult:
    scenario: str
    settings: Settings
    idle_rss: int
    peak_rss: int
    clients: list[ClientResult]
    attack: AttackStats | None = None
    abandon: AbandonStats | None = None
    counters: Counters | None = None  # abandon: at the end
    close_wait: int | None = None  # abandon: at the end
    server_exit: str = ""

    @property
    def rss_above_idle(self) -> int:
        return max(0, self.peak_rss - self.idle_rss)


def warm_up(port: int) -> None:
    """Each route once, /big a few times: the idle RSS is that of a server that has served."""
    for path in ("/", "/counters", "/big", "/big", "/big", "/wait?seconds=0"):
        http_get(port, path, timeout=5.0)
    deadline = time.monotonic() + 5
    with _connect(port, deadline) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: w\r\nContent-Length: 65536\r\n\r\n" + b"u" * 65536)
        _read_response(sock, deadline)


def run_scenario(scenario: str, settings: Settings, pool: ProcessPoolExecutor) -> ScenarioResult:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    raise_fd_limit()
    server = AttackServer({"max_connections": settings.max_connections})
    with server:
        warm_up(server.port)
        time.sleep(0.5)
        idle = server.rss()
        with RSSSampler(server.proc.pid) as rss:
            result = asyncio.run(_run(scenario, server.port, settings, pool))
        result.idle_rss, result.peak_rss = idle, rss.peak
    result.server_exit = server.exit
    return result


async def _run(scenario: str, port: int, s: Settings, pool: ProcessPoolExecutor) -> ScenarioResult:
    result = ScenarioResult(scenario, s, 0, 0, [])
    # The keep-alive client connects now; both start once the attack is under way.
    start_at = time.time() + 0.5 + (2.0 if scenario == "abandon" else 1.0 + s.settle)
    clients = start_normal_clients(pool, port, s, start_at)
    await asyncio.sleep(0.5)
    if scenario == "abandon":
        control = await Control(port).open()
        try:
            result.abandon = await abandon(port, s.connections, control)
            result.clients = await normal_results(clients, s, start_at)
            result.counters = await control.counters()
        finally:
            await control.close()
        result.close_wait = close_wait_count(port)
        return result
    attack = SlowAttack(scenario, port, s.connections, s.interval, ramp=1.0)
    attack.start()
    try:
        result.clients = await normal_results(clients, s, start_at)
    finally:
        await attack.stop()
    result.attack = attack.stats
    return result


# ---- the report ------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def table(results: Sequence[ScenarioResult]) -> str:
    head = [
        "scenario",
        "normal client",
        "attack conns",
        "max_connections",
        "requests",
        "failures",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "peak RSS above idle (MiB)",
        "handlers cancelled",
        "CLOSE-WAIT after",
    ]
    rows = [head]
    for r in results:
        for c in r.clients:
            cancelled = close_wait = "-"
            if r.scenario == "abandon":
                started = r.counters.started if r.counters else None
                cancelled = f"{r.counters.cancelled} of {started}" if r.counters else "unknown"
                close_wait = str(r.close_wait)
            rows.append(
                [
                    r.scenario,
                    c.mode,
                    str(r.settings.connections),
                    str(r.settings.max_connections),
                    str(c.requests),
                    str(c.failed),
                    _ms(c.percentile(50)),
                    _ms(c.percentile(95)),
                    _ms(c.percentile(99)),
                    f"{r.rss_above_idle / MiB:.1f}",
                    cancelled,
                    close_wait,
                ]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def details(r: ScenarioResult) -> str:
    """What the attack did and what the server did to it, in a line or two."""
    out = [
        f"{r.scenario}: idle RSS {r.idle_rss / MiB:.1f} MiB, peak {r.peak_rss / MiB:.1f} MiB; server {r.server_exit}"
    ]
    for c in r.clients:
        if c.failures:
            kinds = ", ".join(f"{k} {v}" for k, v in c.failures.most_common())
            out.append(f"  {c.mode} client failures: {kinds}")
    if r.attack is not None:
        a = r.attack
        answers = ", ".join(f"{k} {v}" for k, v in a.answers.most_common()) or "none"
        out.append(
            f"  attack: {a.attackers} attackers made {a.connects} connections ({a.connect_failures} connects failed), "
            f"at most {a.open_peak} open at once; the server closed {a.closed_by_server} (first answer: {answers})"
        )
    if r.abandon is not None:
        b, c2 = r.abandon, r.counters
        ran = f"{c2.started} started, {c2.cancelled} cancelled, {c2.finally_ran} ran their finally" if c2 else "unknown"
        out.append(
            f"  abandon: {b.sent} requests sent, {b.refused} closed by the server before the client closed; "
            f"handlers {ran}; {r.close_wait} sockets in CLOSE-WAIT at the end"
        )
    return "\n".join(out)


def _jsonable(r: ScenarioResult) -> dict[str, object]:
    d = asdict(r)
    for c, raw in zip(r.clients, d["clients"], strict=True):
        raw.update(
            failed=c.failed,
            **{f"p{q}_ms": None if v is None else round(v * 1000, 2) for q in (50, 95, 99) for v in [c.percentile(q)]},
        )
        raw["failures"] = dict(c.failures)  # asdict() rebuilds a Counter from its items: wrong keys
        del raw["latencies"]
    if r.attack is not None:
        d["attack"]["answers"] = dict(r.attack.answers)
    d["rss_above_idle_mib"] = round(r.rss_above_idle / MiB, 1)
    return d


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attacks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000, help="attack connections (default 1000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of normal traffic per scenario")
    parser.add_argument("--scenario", default="all", help=f"all, or one or more of {', '.join(SCENARIOS)}")
    parser.add_argument("--max-connections", type=int, default=500, help="the server's max_connections")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second of each normal client")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a normal request fails")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between an attacker's pieces")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl+C, so the server is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    names = SCENARIOS if args.scenario == "all" else tuple(args.scenario.split(","))
    for name in names:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    settings = Settings(
        args.connections, args.duration, args.max_connections, args.rate, args.timeout, interval=args.interval
    )
    results: list[ScenarioResult] = []
    with client_pool() as pool:
        for name in names:
            print(
                f"{name}: {settings.connections} connections, max_connections={settings.max_connections} ...",
                flush=True,
            )
            results.append(run_scenario(name, settings, pool))
            print(details(results[-1]), flush=True)
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([_jsonable(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
