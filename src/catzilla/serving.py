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


# This process's worker slot (0..workers-1; 0 without workers) and how often
# the supervisor restarted that slot: labels and figures of /metrics.
_worker_slot = 0
_worker_restarts = 0


def worker_slot() -> int:
    return _worker_slot


def worker_restarts() -> int:
    return _worker_restarts


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


def _wait_readable(fd: int, timeout: float | None) -> None:
    if hasattr(select, "poll"):  # any fd number, where select() stops at FD_SETSIZE
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(None if timeout is None else math.ceil(timeout * 1000))
    else:
        select.select([fd], [], [], timeout)


def supervise(
    workers: int,
    serve_one: Callable[[], None],
    stop_one: Callable[[], None],
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
) -> None:
    """Fork ``workers`` processes running ``serve_one``; restart any that dies
    (later and later while they crash soon after starting); on SIGINT/SIGTERM
    stop them all gracefully and return. A worker whose supervisor dies, however,
    stops too: ``stop_one`` (any thread), then ``os._exit`` if still there after
    ``shutdown_timeout`` and a margin for shutdown hooks."""
    supervisor = os.getpid()
    stop_timeout = shutdown_timeout + _STOP_MARGIN_S
    children: dict[int, tuple[int, float]] = {}  # pid: (slot, started at)
    streaks = [0] * workers  # per slot: crashes in a row, each soon after its start
    restarts = [0] * workers  # per slot: times it was started again
    pending: dict[int, float] = {}  # slot: when to start it again
    stopping = False
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # The supervisor holds the only write end: EOF in a worker means it is gone.
    death_r, death_w = os.pipe()
    # Signals (SIGCHLD, SIGINT, SIGTERM) write to this pipe: the loop below waits
    # on it, and on a restart's due time, so no signal is slept through.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)

    def spawn(slot: int) -> None:
        # Blocked until the child has put its own handlers back: a stop signal
        # sent to it meanwhile would otherwise reach the supervisor's handler
        # there. The death signal stays blocked in the child (see DEATH_SIGNAL).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals | _DEATH_MASK)
        try:
            pid = os.fork()
            if pid == 0:
                global _worker_slot, _worker_restarts
                _worker_slot, _worker_restarts = slot, restarts[slot]
                run_worker()
            children[pid] = (slot, time.monotonic())
            if stopping:  # a stop signal's handler ran before the child was listed
                os.kill(pid, signal.SIGTERM)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def run_worker() -> NoReturn:
        code = 0
        try:
            pdeathsig = _die_with(supervisor)
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in saved.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            # Until the C loop takes them over: a stop signal during startup
            # would otherwise kill the worker without its shutdown hooks.
            # Another one kills, as it does once the C loop has begun its stop.
            for sig in stop_signals:
                signal.signal(sig, stop_worker)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask_outside | _DEATH_MASK)
            for fd in (death_w, wake_r, wake_w):
                os.close(fd)
            _watch_supervisor(death_r, pdeathsig, stop_one, stop_timeout)
            serve_one()
        except BaseException:  # a worker never returns into the supervisor's code
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def stop_worker(signum: int, frame: Any) -> None:
        for sig in stop_signals:
            signal.signal(sig, signal.SIG_DFL)
        stop_one()

    def on_stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):  # it exited already
                os.kill(pid, signal.SIGTERM)

    def on_exit(pid: int, status: int) -> None:
        slot, started = children.pop(pid)
        if stopping:
            return
        code = os.waitstatus_to_exitcode(status)
        now = time.monotonic()
        if now - started >= _STABLE_AFTER_S:
            streaks[slot] = 0
        delay = restart_delay(streaks[slot])
        if code != 0:
            streaks[slot] += 1
        pending[slot] = now + delay
        restarts[slot] += 1
        _say(f"catzilla: worker {pid} exited ({describe_exit(code)}); restarting in {delay:.1f} s")

    mask_outside = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    # SIGCHLD gets a handler that does nothing but have it reach the wakeup pipe
    # (ignored by default, it would not)
    handlers: dict[int, Callable[[int, Any], None]] = {signal.SIGCHLD: lambda signum, frame: None}
    handlers.update({s: on_stop for s in stop_signals})
    saved = {s: signal.signal(s, h) for s, h in handlers.items()}
    old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    try:
        for slot in range(workers):
            spawn(slot)
        while True:
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid in children:
                    on_exit(pid, status)
            if stopping:
                pending.clear()
            now = time.monotonic()
            for slot, due in sorted(pending.items()):
                if due <= now and not stopping:
                    del pending[slot]
                    spawn(slot)
            if not children and not pending:
                return
            timeout = max(0.0, min(pending.values()) - time.monotonic()) if pending else None
            _wait_readable(wake_r, timeout)
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for fd in (death_r, death_w, wake_r, wake_w):
            os.close(fd)
