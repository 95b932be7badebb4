"""The threads that blocking sync handlers run on (the C side is
csrc/python/py_pool.h).

A sync handler runs on the HTTP loop's thread while it is quick. A route
marked ``threadpool=True``, or one whose handler was seen blocking the loop
(asleep inside the call: ``time.sleep``, a socket read, a lock), runs its
handler here instead, so other clients are served meanwhile, as FastAPI runs
every ``def`` handler in a thread pool. Threads start on demand, up to the
size of the first app that serves; they live as long as the process.
"""

from __future__ import annotations

import itertools
import os
import threading

from catzilla import _core

DEFAULT_SIZE = 40  # AnyIO's default for FastAPI's thread pool

_lock = threading.Lock()
_configured = False
_names = itertools.count(1)


def _start_thread() -> None:
    t = threading.Thread(target=_core._pool_work, name=f"catzilla-pool-{next(_names)}", daemon=True)
    t.start()


def configure(size: int) -> None:
    """Let the C core start up to ``size`` pool threads (the first call wins)."""
    global _configured
    with _lock:
        if not _configured:
            _core._pool_configure(_start_thread, size)
            _configured = True


def check_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"threadpool_size must be an int >= 1, got {value!r}")
    return value


# threadpool.policy's answers (the C core's POLICY_*).
POLICY_AUTO, POLICY_POOL, POLICY_LOOP = 0, 1, 2


def policy(threadpool: object, is_async: bool, path: str) -> int:
    """The C core's policy for a route: 0 on the loop until seen blocking, 1 the
    pool, 2 the loop."""
    if threadpool is not None and not isinstance(threadpool, bool):
        raise TypeError(f"threadpool must be True, False or None, got {threadpool!r} (route {path!r})")
    if is_async:
        if threadpool:
            raise ValueError(f"threadpool=True is for sync handlers; route {path!r} has an async one")
        return 2
    return 0 if threadpool is None else 1 if threadpool else 2


def _after_fork_in_child() -> None:
    global _configured
    _core._pool_after_fork()  # the parent's threads are not in the child
    _configured = False


os.register_at_fork(after_in_child=_after_fork_in_child)
