"""Running an app: one process, or a supervisor of forked workers."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

WORKER_RESTART_DELAY_S = 0.5


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


def supervise(workers: int, serve_one: Callable[[], None]) -> None:
    """Fork ``workers`` processes running ``serve_one``; restart any that dies;
    on SIGINT/SIGTERM stop them all gracefully and return."""
    children: dict[int, int] = {}
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                serve_one()
            except BaseException:  # a worker never returns into the supervisor's code
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = slot

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):  # it exited already
                os.kill(pid, signal.SIGTERM)

    saved = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for slot in range(workers):
            spawn(slot)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            dead = children.pop(pid, None)
            if dead is None or stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            print(f"catzilla: worker {pid} exited ({code}); starting another", file=sys.stderr, flush=True)
            time.sleep(WORKER_RESTART_DELAY_S)
            if not stopping:
                spawn(dead)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
