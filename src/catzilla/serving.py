"""Running an app: one process, or a supervisor of forked workers."""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

_RESTART_DELAY_S = 0.5  # the first restart of a worker that died
_RESTART_DELAY_MAX_S = 30.0  # a worker crashing in a loop is retried at least this often
_STABLE_AFTER_S = 10.0  # a worker up this long was not crash-looping: its next restart is quick again
_STOP_MARGIN_S = 5.0  # after shutdown_timeout, for shutdown hooks, before an orphaned worker exits hard
DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0  # the C server's (CZ_SERVER_DEFAULT_SHUTDOWN_TIMEOUT)
# Workers on Linux ask the kernel for a signal when the supervisor dies (prctl),
# the pipe being the second line; elsewhere the pipe is all there is.
PDEATHSIG = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Not SIGTERM: the kernel sends the parent-death signal once per supervisor
# thread that exits (each hands the worker on to the next), and the supervisor
# has more than one; a second SIGTERM, once the C loop has begun a graceful stop,
# meets the default action (death, without shutdown hooks). This real-time signal
# stays blocked in the worker and one thread takes it with sigwait, so any number
# of them just ask for one graceful stop.
if sys.platform == "linux":
    DEATH_SIGNAL: int | None = signal.SIGRTMIN
else:
    DEATH_SIGNAL = None
_DEATH_MASK = frozenset() if DEATH_SIGNAL is None else frozenset({DEATH_SIGNAL})


# -- listening sockets made or inherited before the workers start -------------------------


def describe_fd(fd: int) -> str:
    """What an inherited listening socket ``fd`` is, for the startup line
    (``unix:/run/app.sock`` or ``http://127.0.0.1:8000``); ValueError saying
    why it cannot be served (not open, not a socket, not a TCP or Unix stream)."""
    import socket

    if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
        raise ValueError(f"fd must be an int >= 0, got {fd!r}")
    try:
        os.fstat(fd)
    except OSError:
        raise ValueError(f"fd {fd} is not an open file descriptor") from None
    try:
        sock = socket.socket(fileno=os.dup(fd))  # the family and type are read from the socket
    except OSError as exc:
        raise ValueError(f"fd {fd} is not a socket ({exc.strerror or exc})") from None
    with sock:
        families = (socket.AF_INET, socket.AF_INET6, getattr(socket, "AF_UNIX", -1))
        if sock.type != socket.SOCK_STREAM or sock.family not in families:
            raise ValueError(f"fd {fd} is not a TCP or Unix stream socket")
        name = sock.getsockname()
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return f"unix:{os.fsdecode(name) if name else '?'}"
        host = name[0] if sock.family == socket.AF_INET else f"[{name[0]}]"
        return f"http://{host}:{name[1]}"


class UnixListener:
    """A Unix domain socket bound at ``path`` (``cz_server_unix_socket``: a stale
    socket file is replaced, a live one refused), made once, before any worker
    forks: every worker accepts on it. ``close()`` closes it and removes the
    file, unless another server has put its own there meanwhile."""

    def __init__(self, path: str, backlog: int) -> None:
        from catzilla import _core

        self.path = os.path.abspath(path)
        self.fd: int | None = _core.unix_socket(self.path, backlog)
        try:
            st = os.stat(self.path)
            self.identity: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            self.identity = None
        self.url = f"unix:{self.path}"

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        os.close(fd)
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self.identity:
                os.unlink(self.path)

    def __enter__(self) -> UnixListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# This process's worker slot (0..workers-1; 0 without workers) and how often
# the supervisor started that slot again: labels and figures of /metrics.
_worker_slot = 0
_worker_restarts = 0


def worker_slot() -> int:
    return _worker_slot


def worker_restarts() -> int:
    return _worker_restarts


# The listening socket the supervisor made for this worker's slot (see
# Supervisor.listener), or None: the worker binds the port itself.
_slot_listener: int | None = None


def slot_listener() -> int | None:
    return _slot_listener


def tcp_listener(host: str, port: int, backlog: int) -> Callable[[], int]:
    """For ``supervise(listener=...)``: each worker slot gets a listening TCP
    socket of its own at host:port (SO_REUSEPORT: the kernel spreads new
    connections over the slots), made by the supervisor and inherited by the
    slot's worker and by each of its replacements. The connections queued on a
    slot's socket when its worker stops are thus accepted by the worker that
    replaces it, not reset as when the stopping worker's own socket closes."""
    from catzilla import _core

    return lambda: _core.tcp_socket(host, port, backlog)


def banner(url: str, workers: int, allocator: str, production: bool, version: str, debug: bool = False) -> str:
    plural = "worker" if workers == 1 else "workers"
    if production:
        return f"catzilla {version}: serving {url} ({workers} {plural}, allocator {allocator})"
    lines = [
        f"Catzilla {version}",
        f"  serving   {url}",
        f"  workers   {workers}",
        f"  allocator {allocator}",
    ]
    if debug:  # said at every start, so that it is not deployed unnoticed
        lines.append("  debug     ON: 500 answers show exceptions and tracebacks (not for deployment)")
    return "\n".join([*lines, "  press Ctrl+C to stop"])


class signals_to:
    """While in the block (main thread only), SIGINT/SIGTERM are the C loop's;
    afterwards Python's handlers are put back."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> bool:
        if self.active:
            self.saved = {s: signal.getsignal(s) for s in self.SIGNALS}
        return self.active

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _say(line: str) -> None:
    """One line to stderr in one write: workers and the supervisor share it."""
    with contextlib.suppress(OSError, ValueError):  # stderr gone or closed: nobody to tell
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


say = _say


def describe_exit(code: int) -> str:
    """``os.waitstatus_to_exitcode`` output in words: "exit code 1", "signal SIGKILL"."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def restart_delay(streak: int) -> float:
    """Seconds before restarting a worker after ``streak`` crashes in a row that each came soon after its start."""
    return min(_RESTART_DELAY_S * 2.0 ** min(streak, 16), _RESTART_DELAY_MAX_S)


def _die_with(supervisor: int) -> bool:
    """Linux: a death signal when the supervisor dies, whatever killed it
    (SIGKILL too); called with it blocked. Whether that was arranged."""
    armed = False
    if PDEATHSIG and DEATH_SIGNAL is not None:
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            args = (_PR_SET_PDEATHSIG, DEATH_SIGNAL, 0, 0, 0)
            armed = libc.prctl(*(ctypes.c_ulong(a) for a in args)) == 0
        except (OSError, AttributeError):  # no prctl here: the pipe still tells
            pass
    # the supervisor may have died before prctl took effect: then no signal comes
    if os.getppid() != supervisor:
        os._exit(0)
    return armed


def _watch_supervisor(fd: int, pdeathsig: bool, stop_one: Callable[[], None], stop_timeout: float) -> None:
    """In a worker: threads that wait for the supervisor's death, told by EOF on
    the pipe (nothing is ever written to it: a read returns only when the
    supervisor's write end, the only one, has closed), or by the death signal.
    Then stop gracefully, without a signal (``stop_one``), and exit hard if that
    has not ended the process within ``stop_timeout``."""
    once = threading.Lock()

    def gone() -> None:
        if not once.acquire(blocking=False):
            return  # the other line noticed first
        _say(f"catzilla: worker {os.getpid()}: supervisor gone; stopping")
        stop_one()
        time.sleep(stop_timeout)
        _say(f"catzilla: worker {os.getpid()}: not stopped after {stop_timeout:g} s; exiting")
        os._exit(1)

    def read_to_eof() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            return
        gone()

    def take_signal() -> None:
        signal.sigwait(_DEATH_MASK)
        gone()

    lines = [read_to_eof, take_signal] if pdeathsig else [read_to_eof]
    for line in lines:
        threading.Thread(target=line, name="catzilla-supervisor", daemon=True).start()


def _wait_readable(fds: list[int], timeout: float | None) -> list[int]:
    """The fds of ``fds`` that are readable (or at EOF) within ``timeout``."""
    if hasattr(select, "poll"):  # any fd number, where select() stops at FD_SETSIZE
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        events = poller.poll(None if timeout is None else math.ceil(timeout * 1000))
        return [fd for fd, _ in events]
    readable, _, _ = select.select(fds, [], [], timeout)
    return list(readable)


# A worker that cannot load the app (a bad ``module:app``, an import error):
# it says why itself, once; at startup the supervisor gives up, on a reload the
# workers running keep serving.
EXIT_NO_APP = 3

# The signals a supervisor takes (gunicorn's): SIGHUP restarts every worker,
# one by one, each new one serving before the one it replaces stops; SIGTTIN
# adds a worker, SIGTTOU removes one.
ROLL_SIGNALS = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)


@dataclass(frozen=True)
class Recycling:
    """When a worker asks to be replaced (gracefully: its successor serves
    before it stops). ``max_requests`` (plus a random 0..``max_requests_jitter``,
    so that workers do not all go at once), ``max_rss_mb`` (the process's
    resident memory) and ``max_allocated_mb`` (what the app's allocator has
    handed out and not got back); None: no such limit."""

    max_requests: int | None = None
    max_requests_jitter: int = 0
    max_rss_mb: float | None = None
    max_allocated_mb: float | None = None
    interval: float = 0.1  # seconds between looks

    @property
    def active(self) -> bool:
        return bool(self.max_requests or self.max_rss_mb or self.max_allocated_mb)


class StartupError(Exception):
    """No worker could start (each said why on stderr)."""


# In a worker: the write end of its status pipe to the supervisor, and its
# recycling limits (set between fork and serve_one).
_status_fd: int | None = None
_recycling: Recycling | None = None
_first_worker = False


def _tell(fd: int, message: str) -> None:
    with contextlib.suppress(OSError):  # the supervisor is gone: the death lines handle that
        os.write(fd, (message + "\n").encode("utf-8", "replace")[:512])


def first_worker() -> bool:
    """True in the first worker a supervisor started (it prints the startup line)."""
    return _first_worker


def worker_ready(probe: Callable[[], tuple[int, float | None]] | None = None) -> None:
    """In a supervised worker, once it listens: tell the supervisor (it stops a
    worker this one replaces only then) and start watching the recycling limits
    (``probe`` gives the requests read so far and the app's allocated MiB).
    Outside a supervisor: nothing."""
    fd = _status_fd
    if fd is None:
        return
    _tell(fd, "ready")
    rec = _recycling
    if rec is not None and rec.active and probe is not None:
        threading.Thread(target=_watch_limits, args=(fd, rec, probe), name="catzilla-recycling", daemon=True).start()


def _watch_limits(fd: int, rec: Recycling, probe: Callable[[], tuple[int, float | None]]) -> None:
    import random

    from catzilla.memory import MIB, process_rss_bytes

    max_requests = None
    if rec.max_requests:
        max_requests = rec.max_requests + random.randint(0, max(0, rec.max_requests_jitter))
    rss_seen = _Growth()
    allocated_seen = _Growth()
    while True:
        time.sleep(rec.interval)
        reason = None
        try:
            requests, allocated_mb = probe()
        except Exception:  # the app is going away
            return
        now = time.monotonic()
        if max_requests is not None and requests >= max_requests:
            reason = f"max requests: {requests} served, limit {max_requests}"
        if reason is None and rec.max_rss_mb:
            rss = process_rss_bytes()
            if rss is not None:
                reason = rss_seen.over("max RSS", now, rss / MIB, rec.max_rss_mb)
        if reason is None and rec.max_allocated_mb and allocated_mb is not None:
            reason = allocated_seen.over("max allocated", now, allocated_mb, rec.max_allocated_mb)
        if reason is not None:
            _tell(fd, f"recycle {reason}")
            return


# A replacement takes about this long to listen (fork, import, bind): a worker
# growing fast asks for one that much ahead of its memory limit, so that it is
# told to stop near the limit, not well past it.
_LEAD_S = 0.4
_GROWTH_WINDOW_S = 1.0


class _Growth:
    """A memory figure over the last second: whether it reaches a limit now,
    or will within _LEAD_S at the rate it grows."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    def over(self, what: str, now: float, mib: float, limit: float) -> str | None:
        self.samples.append((now, mib))
        while len(self.samples) > 2 and now - self.samples[0][0] > _GROWTH_WINDOW_S:
            self.samples.pop(0)
        if mib >= limit:
            return f"{what}: {mib:.1f} MiB, limit {limit:g} MiB"
        t0, m0 = self.samples[0]
        rate = (mib - m0) / (now - t0) if now > t0 else 0.0
        if rate > 0 and mib + rate * _LEAD_S >= limit:
            return f"{what}: {mib:.1f} MiB growing {rate:.0f} MiB/s, limit {limit:g} MiB"
        return None


@dataclass
class _Worker:
    pid: int
    slot: int
    started: float
    status: int  # read end of its status pipe; -1 once at EOF
    replaces: int | None = None  # the worker it takes over from, once ready
    reason: str = ""  # why it replaces that one
    ready: bool = False
    retiring: str | None = None  # why it was told to stop
    buf: bytes = b""


def supervise(
    workers: int,
    serve_one: Callable[[], None],
    stop_one: Callable[[], None],
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
    recycling: Recycling | None = None,
    on_started: Callable[[Callable[[str], None]], None] | None = None,
    one_first: bool = False,
    listener: Callable[[], int] | None = None,
) -> None:
    """Fork ``workers`` processes running ``serve_one``; restart any that dies
    (later and later while they crash soon after starting); on SIGINT/SIGTERM
    stop them all gracefully and return. A worker whose supervisor dies, however,
    stops too: ``stop_one`` (any thread), then ``os._exit`` if still there after
    ``shutdown_timeout`` and a margin for shutdown hooks.

    ``serve_one`` calls ``worker_ready()`` once it listens. SIGHUP replaces the
    workers one by one (the new one ready before the old one is told to stop),
    as do the ``recycling`` limits, one worker at a time; SIGTTIN/SIGTTOU add
    or remove a worker. ``on_started(request_restart)`` runs in the supervisor
    (e.g. a file watcher's thread, calling ``request_restart(reason)``).
    StartupError when the first worker exits ``EXIT_NO_APP`` before any served;
    ``one_first``: the other workers start once the first one listens (workers
    that import the app: a broken one says so once, not once per worker).
    ``listener`` (e.g. ``tcp_listener``) makes a listening socket per worker
    slot, which the slot's workers serve (``slot_listener()``)."""
    Supervisor(workers, serve_one, stop_one, shutdown_timeout, recycling, listener).run(on_started, one_first)


class Supervisor:
    def __init__(
        self,
        workers: int,
        serve_one: Callable[[], None],
        stop_one: Callable[[], None],
        shutdown_timeout: float,
        recycling: Recycling | None,
        listener: Callable[[], int] | None = None,
    ) -> None:
        self.target = workers
        self.make_listener = listener
        self.listeners: dict[int, int] = {}  # slot: its listening socket, while the slot has a worker
        self.serve_one = serve_one
        self.stop_one = stop_one
        self.stop_timeout = shutdown_timeout + _STOP_MARGIN_S
        self.recycling = recycling
        self.pid = os.getpid()
        self.children: dict[int, _Worker] = {}
        self.streaks: dict[int, int] = {}  # per slot: crashes in a row, each soon after its start
        self.pending: dict[int, float] = {}  # slot: when to start it again
        self.roll: list[tuple[int, str]] = []  # workers to replace, one at a time: (pid, why)
        self.roll_due = 0.0
        self.rolling: int | None = None  # the replacement starting now
        self.stopping = False
        self.started_all = False  # the first worker came up (or failed otherwise than EXIT_NO_APP)
        self.ever_ready = False
        self.spawned = 0
        self.slot_starts: dict[int, int] = {}  # slot: workers started for it
        self.failed = False
        self.requests: list[tuple[str, str]] = []  # (what, why) from signal handlers and other threads
        self.stop_signals = {signal.SIGINT, signal.SIGTERM}
        self.blocked = self.stop_signals | set(ROLL_SIGNALS) | _DEATH_MASK
        # The supervisor holds the only write end: EOF in a worker means it is gone.
        self.death_r, self.death_w = os.pipe()
        # Signals write to this pipe: the loop below waits on it, on the
        # workers' status pipes and on the next due time, so nothing is slept through.
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        self.saved: dict[int, Any] = {}
        self.old_wakeup = -1
        self.mask_outside: set[int | signal.Signals] = set()

    # -- signals ------------------------------------------------------------------

    def request(self, what: str, why: str) -> None:
        """From a signal handler or another thread: queue, then wake the loop."""
        self.requests.append((what, why))
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"!")

    def request_restart(self, why: str) -> None:
        self.request("restart", why)

    def on_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):  # it exited already
                os.kill(pid, signal.SIGTERM)

    def on_roll_signal(self, signum: int, frame: Any) -> None:
        what = {signal.SIGHUP: "restart", signal.SIGTTIN: "add", signal.SIGTTOU: "remove"}[signal.Signals(signum)]
        self.request(what, signal.Signals(signum).name)

    # -- workers ------------------------------------------------------------------

    def spawn(self, slot: int, replaces: int | None = None, reason: str = "") -> int:
        # Blocked until the child has put its own handlers back: a signal sent
        # to it meanwhile would otherwise reach the supervisor's handler there.
        # The death signal stays blocked in the child (see DEATH_SIGNAL).
        if self.make_listener is not None and slot not in self.listeners:
            try:
                self.listeners[slot] = self.make_listener()
            except OSError as exc:
                if not self.spawned:  # the port cannot be served at all (busy, not an address here): say so
                    raise
                # later (e.g. out of file descriptors): the worker binds the port itself (SO_REUSEPORT)
                _say(f"catzilla: no listening socket made for worker slot {slot} ({exc}); its worker binds its own")
        status_r, status_w = os.pipe()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.blocked)
        try:
            first = self.spawned == 0
            self.spawned += 1
            starts = self.slot_starts.get(slot, 0)
            self.slot_starts[slot] = starts + 1
            pid = os.fork()
            if pid == 0:
                global _worker_slot, _worker_restarts
                _worker_slot, _worker_restarts = slot, starts
                self.run_worker(status_r, status_w, first)
            os.close(status_w)
            os.set_blocking(status_r, False)
            self.children[pid] = _Worker(pid, slot, time.monotonic(), status_r, replaces, reason)
            if self.stopping:  # a stop signal's handler ran before the child was listed
                os.kill(pid, signal.SIGTERM)
            return pid
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def run_worker(self, status_r: int, status_w: int, first: bool) -> NoReturn:
        global _status_fd, _recycling, _first_worker
        code = 0
        try:
            pdeathsig = _die_with(self.pid)
            signal.set_wakeup_fd(self.old_wakeup)
            for sig, handler in self.saved.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            # A terminal's hangup, or a SIGHUP/SIGTTIN/SIGTTOU meant for the
            # supervisor but sent to the group, leaves workers alone.
            for sig in ROLL_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            # Until the C loop takes them over: a stop signal during startup
            # would otherwise kill the worker without its shutdown hooks.
            # Another one kills, as it does once the C loop has begun its stop.
            for sig in self.stop_signals:
                signal.signal(sig, self.stop_worker)
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask_outside | _DEATH_MASK)
            for fd in (self.death_w, self.wake_r, self.wake_w, status_r):
                os.close(fd)
            for other in self.children.values():
                if other.status >= 0:
                    os.close(other.status)
            global _slot_listener
            _slot_listener = self.listeners.pop(_worker_slot, None)
            for fd in self.listeners.values():  # a slot's socket lives while that slot has a worker
                os.close(fd)
            self.listeners.clear()
            _status_fd, _recycling, _first_worker = status_w, self.recycling, first
            _watch_supervisor(self.death_r, pdeathsig, self.stop_one, self.stop_timeout)
            self.serve_one()
        except SystemExit as exit:  # said why already (e.g. EXIT_NO_APP)
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:  # a worker never returns into the supervisor's code
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def stop_worker(self, signum: int, frame: Any) -> None:
        for sig in self.stop_signals:
            signal.signal(sig, signal.SIG_DFL)
        self.stop_one()

    def retire(self, w: _Worker, why: str) -> None:
        w.retiring = why
        with contextlib.suppress(ProcessLookupError):
            os.kill(w.pid, signal.SIGTERM)

    def live(self) -> list[_Worker]:
        """The workers serving or about to, none of them on its way out."""
        return [w for w in self.children.values() if w.retiring is None and w.replaces is None]

    def close_status(self, w: _Worker) -> None:
        if w.status >= 0:
            self.read_status(w)  # what it said last (it may close the fd at EOF)
        if w.status >= 0:
            os.close(w.status)
            w.status = -1

    def read_status(self, w: _Worker) -> None:
        try:
            while True:
                data = os.read(w.status, 4096)
                if not data:
                    os.close(w.status)
                    w.status = -1
                    break
                w.buf += data
        except (BlockingIOError, OSError):
            pass
        while b"\n" in w.buf:
            line, w.buf = w.buf.split(b"\n", 1)
            self.on_message(w, line.decode("utf-8", "replace"))

    def on_message(self, w: _Worker, line: str) -> None:
        what, _, why = line.partition(" ")
        if what == "ready" and not w.ready:
            w.ready = True
            self.ever_ready = True
            if not self.started_all:
                self.start_rest()
            if w.replaces is not None:
                old = self.children.get(w.replaces)
                w.replaces = None
                if self.rolling == w.pid:
                    self.rolling = None
                if old is not None and old.retiring is None:
                    _say(f"catzilla: worker {old.pid} replaced by worker {w.pid} ({w.reason})")
                    self.retire(old, w.reason)
        elif what == "recycle" and w.retiring is None and w.replaces is None and not self.queued(w.pid):
            if self.stopping:
                return
            # at once, beside any rolling restart: a worker at its memory limit does not wait its turn
            self.spawn(w.slot, replaces=w.pid, reason=why)

    def queued(self, pid: int) -> bool:
        """Whether worker ``pid`` is to be replaced, or being replaced, already."""
        return any(p == pid for p, _ in self.roll) or any(o.replaces == pid for o in self.children.values())

    def rolling_for(self) -> int | None:
        new = self.children.get(self.rolling) if self.rolling is not None else None
        return None if new is None else new.replaces

    def start_rest(self) -> None:
        self.started_all = True
        taken = {w.slot for w in self.children.values()} | set(self.pending)
        for slot in range(self.target):
            if slot not in taken:
                self.spawn(slot)

    def drop_listener(self, slot: int) -> None:
        """Close slot's socket once no worker serves it: the kernel then sends its
        new connections to the other slots (a new one is made with the slot's next worker)."""
        fd = self.listeners.get(slot)
        if fd is not None and not any(o.slot == slot for o in self.children.values()):
            del self.listeners[slot]
            os.close(fd)

    def on_exit(self, pid: int, status: int) -> None:
        w = self.children.pop(pid)
        self.close_status(w)
        self.drop_listener(w.slot)
        code = os.waitstatus_to_exitcode(status)
        now = time.monotonic()
        if self.stopping:
            return
        if w.retiring is not None:
            if code != 0:
                _say(f"catzilla: worker {pid} exited ({describe_exit(code)}) while stopping ({w.retiring})")
            return
        if w.replaces is not None and w.replaces in self.children:  # never served: the old one goes on
            if self.rolling == pid:
                self.rolling = None
            if code == EXIT_NO_APP:
                olds = sorted({w.replaces, *(p for p, _ in self.roll)})
                self.roll.clear()
                said = ", ".join(str(p) for p in olds if p in self.children)
                _say(f"catzilla: worker {pid} could not load the app; restart abandoned, workers {said} keep serving")
                return
            streak = self.streaks.get(w.slot, 0)
            delay = restart_delay(streak)
            self.streaks[w.slot] = streak + 1
            self.roll.insert(0, (w.replaces, w.reason))
            self.roll_due = now + delay
            _say(
                f"catzilla: worker {pid} exited ({describe_exit(code)}) before it served, replacing worker "
                f"{w.replaces}; retrying in {delay:.1f} s"
            )
            return
        if not self.ever_ready and code == EXIT_NO_APP:
            self.failed = True
            self.on_stop(signal.SIGTERM, None)
            return
        if w.slot >= self.target:
            return  # its slot is gone (SIGTTOU)
        successor = next((o for o in self.children.values() if o.slot == w.slot), None)
        if successor is not None:  # it was being replaced: the replacement takes its place
            if code != 0:
                _say(f"catzilla: worker {pid} exited ({describe_exit(code)}); worker {successor.pid} replaces it")
            return
        if now - w.started >= _STABLE_AFTER_S:
            self.streaks[w.slot] = 0
        delay = restart_delay(self.streaks.get(w.slot, 0))
        if code != 0:
            self.streaks[w.slot] = self.streaks.get(w.slot, 0) + 1
        self.pending[w.slot] = now + delay
        _say(f"catzilla: worker {pid} exited ({describe_exit(code)}); restarting in {delay:.1f} s")
        if not self.started_all:
            self.start_rest()

    def on_request(self, what: str, why: str) -> None:
        if what == "restart":
            self.roll.extend((w.pid, why) for w in sorted(self.live(), key=lambda w: w.slot) if not self.queued(w.pid))
            self.roll_due = 0.0
        elif what == "add":
            self.target += 1
            slot = self.target - 1
            pid = self.spawn(slot)
            _say(f"catzilla: worker {pid} added ({why}): {self.target} workers")
        elif what == "remove":
            if self.target <= 1:
                _say(f"catzilla: {why}: one worker left, not removing it")
                return
            self.target -= 1
            slot = self.target
            self.pending.pop(slot, None)
            self.roll = [(pid, r) for pid, r in self.roll if pid in self.children and self.children[pid].slot < slot]
            gone = [w for w in self.children.values() if w.slot == slot and w.retiring is None]
            for w in gone:
                if w.pid == self.rolling:
                    self.rolling = None
                self.retire(w, why)
            said = ", ".join(str(w.pid) for w in gone) or "none running"
            _say(f"catzilla: worker {said} removed ({why}): {self.target} workers")

    def advance_roll(self, now: float) -> None:
        while self.rolling is None and self.roll and now >= self.roll_due:
            pid, why = self.roll.pop(0)
            old = self.children.get(pid)
            if old is None or old.retiring is not None or old.slot >= self.target:
                continue
            self.rolling = self.spawn(old.slot, replaces=pid, reason=why)

    # -- the loop -----------------------------------------------------------------

    def run(self, on_started: Callable[[Callable[[str], None]], None] | None, one_first: bool = False) -> None:
        self.mask_outside = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        # SIGCHLD gets a handler that does nothing but have it reach the wakeup pipe
        # (ignored by default, it would not)
        handlers: dict[int, Callable[[int, Any], None]] = {signal.SIGCHLD: lambda signum, frame: None}
        handlers.update({s: self.on_stop for s in self.stop_signals})
        handlers.update({s: self.on_roll_signal for s in ROLL_SIGNALS})
        self.saved = {s: signal.signal(s, h) for s, h in handlers.items()}
        self.old_wakeup = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        try:
            self.spawn(0)
            if self.target == 1 or not one_first:
                self.start_rest()
            if on_started is not None:
                on_started(self.request_restart)
            self.loop()
        finally:
            signal.set_wakeup_fd(self.old_wakeup)
            for sig, handler in self.saved.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            for fd in (self.death_r, self.death_w, self.wake_r, self.wake_w, *self.listeners.values()):
                os.close(fd)
            self.listeners.clear()
            for w in self.children.values():
                if w.status >= 0:
                    os.close(w.status)
        if self.failed:
            raise StartupError("the app could not be loaded")

    def loop(self) -> None:
        while True:
            for w in list(self.children.values()):
                if w.status >= 0:
                    self.read_status(w)
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid in self.children:
                    self.on_exit(pid, status)
            while self.requests and not self.stopping:
                self.on_request(*self.requests.pop(0))
            now = time.monotonic()
            if self.stopping:
                self.pending.clear()
                self.roll.clear()
            else:
                for slot, due in sorted(self.pending.items()):
                    if due <= now:
                        del self.pending[slot]
                        self.spawn(slot)
                self.advance_roll(now)
            if not self.children and not self.pending:
                return
            dues = list(self.pending.values())
            if self.roll and self.rolling is None:
                dues.append(self.roll_due)
            timeout = max(0.0, min(dues) - time.monotonic()) if dues else None
            fds = [self.wake_r, *(w.status for w in self.children.values() if w.status >= 0)]
            _wait_readable(fds, timeout)
            with contextlib.suppress(BlockingIOError):
                while os.read(self.wake_r, 512):
                    pass
