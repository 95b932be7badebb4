"""The asyncio event loop that async handlers run on.

While the app serves, the loop runs on the serving thread and steps the C
server (``serve``: the server's epoll descriptor is one of the loop's
readers), so a request reaches its task, and its answer the socket, with no
hand-off between threads. Outside ``serve`` (lifespan, a TestClient's
background work after a stop) the loop runs on a thread of its own, started
when first needed. The C core hands over a coroutine and a _Pending; the
task's result or exception goes back through the _Pending.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import ModuleType
from typing import TYPE_CHECKING, Any

from catzilla._core import Server, _Pending, _Stream

if TYPE_CHECKING:
    import asyncio


CLOSE_GRACE_S = 2.0
LOOPS = ("auto", "asyncio", "uvloop")


def check_loop(loop: object) -> str:
    """uvicorn's choice of event loop: "auto" (uvloop when installed), "asyncio" or "uvloop"."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    if loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise ValueError("loop='uvloop' needs uvloop: pip install uvloop") from None
    return str(loop)


def new_event_loop(loop: str) -> asyncio.AbstractEventLoop:
    import asyncio

    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:  # "auto" without uvloop
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class AsyncRunner:
    def __init__(self, loop: str = "auto") -> None:
        self.loop_kind = loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None  # ours, while it runs the loop
        self._loop_ident: int | None = None  # the thread running the loop (ours, or serve()'s)
        self._lock = threading.Lock()
        # every task on the loop -> the request it answers (None: a pump, a spawn)
        self._tasks: dict[asyncio.Task[Any], _Pending | None] = {}
        self._on_done = self._done  # one bound method for every task: no closure per request
        self._spawned = 0  # spawn()ed coroutines not yet ended
        self._spawned_cv = threading.Condition()
        self._by_pending: dict[_Pending | _Stream, asyncio.Task[Any]] = {}  # loop thread only
        self._aio: ModuleType | None = None  # asyncio, imported by the first async request

    def _made(self) -> asyncio.AbstractEventLoop:
        """The loop, made on first use (under the lock)."""
        if self._loop is None:
            import asyncio

            self._aio = asyncio
            self._loop = new_event_loop(self.loop_kind)
        return self._loop

    def _start(self) -> asyncio.AbstractEventLoop:
        """The loop, running: on a thread of ours unless serve() runs it."""
        with self._lock:
            loop = self._made()
            if self._loop_ident is None:
                ready = threading.Event()

                def run() -> None:
                    self._loop_ident = threading.get_ident()
                    self._aio.set_event_loop(loop)  # type: ignore[union-attr]
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="catzilla-asyncio", daemon=True)
                self._thread.start()
                ready.wait()
            return loop

    def _on_loop(self) -> bool:
        return threading.get_ident() == self._loop_ident

    def _running(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        return loop if loop is not None and self._loop_ident is not None else self._start()

    def _soon(self, fn: Callable[..., object], *args: Any) -> None:
        """``fn(*args)`` on the loop: now when this is its thread, else at its next turn."""
        if self._on_loop():
            fn(*args)
        else:
            self._running().call_soon_threadsafe(fn, *args)

    def serve(self, server: Server) -> None:
        """Run ``server`` (bound) and the loop on this thread until the server
        has stopped: the loop steps the server when its descriptor polls
        readable and when its timers are due. Handlers run inside a step
        with no running loop, as they would on any other thread (a sync
        handler may call ``asyncio.run``)."""
        with self._lock:
            loop = self._made()
            thread, self._thread = self._thread, None
            self._loop_ident = threading.get_ident()
        if thread is not None:  # lifespan ran the loop on our thread: it moves here
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        aio = self._aio
        assert aio is not None
        set_running = aio._set_running_loop
        timer: asyncio.TimerHandle | None = None
        due = 0.0

        def step() -> None:
            nonlocal timer, due
            set_running(None)
            try:
                wait = server.step()
            finally:
                set_running(loop)
            if wait is None:  # stopped and every connection closed
                loop.stop()
            elif wait >= 0:
                when = loop.time() + wait / 1000
                if timer is None or when < due:
                    if timer is not None:
                        timer.cancel()
                    timer, due = loop.call_at(when, on_timer), when

        def on_timer() -> None:
            nonlocal timer
            timer = None
            step()

        def kick() -> None:  # something was posted for the server from this thread: once per step
            loop.call_soon(step)

        fd = server.start(kick)
        try:
            loop.add_reader(fd, step)
            loop.call_soon(step)
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):  # the loop may be closed already
                loop.remove_reader(fd)
            if timer is not None:
                timer.cancel()
            server.finish()
            self._loop_ident = None

    def submit(self, coro: Awaitable[Any], pending: _Pending) -> None:
        self._soon(self._run, coro, pending)

    def submit_all(self, batch: list[tuple[Awaitable[Any], _Pending]]) -> None:
        """Start the coroutines one turn of the server dispatched, at once
        (one hop when another thread runs the loop, not one per request)."""
        self._soon(self._run_all, batch)

    def _run_all(self, batch: list[tuple[Awaitable[Any], _Pending]]) -> None:
        for coro, pending in batch:
            self._run(coro, pending)

    def _run(self, coro: Awaitable[Any], pending: _Pending) -> None:
        task = self._aio.ensure_future(coro, loop=self._loop)  # type: ignore[union-attr]
        self._tasks[task] = pending
        self._by_pending[pending] = task
        task.add_done_callback(self._on_done)

    def pump(self, source: Any, stream: _Stream) -> None:
        """Iterate an async response body on the loop, pushing its pieces to
        ``stream`` (any thread); ``cancel(stream)`` stops it."""
        self._soon(self._start_pump, source, stream)

    def _start_pump(self, source: Any, stream: _Stream) -> None:
        task = self._aio.ensure_future(self._pump(source, stream), loop=self._loop)  # type: ignore[union-attr]
        self._tasks[task] = None
        self._by_pending[stream] = task
        task.add_done_callback(lambda t: self._pump_done(t, stream))

    async def _pump(self, source: Any, stream: _Stream) -> None:
        loop = self._aio.get_running_loop()  # type: ignore[union-attr]
        try:
            while True:
                while not stream.writable():
                    parked = loop.create_future()
                    if stream.park(parked):
                        await parked
                try:
                    piece = await source.__anext__()
                except StopAsyncIteration:
                    return
                if not stream.push(piece):
                    return  # the client went away
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):  # already closed by the cancellation, or broken
                    await aclose()

    def _pump_done(self, task: asyncio.Task[Any], stream: _Stream) -> None:
        self._tasks.pop(task, None)
        self._by_pending.pop(stream, None)
        stream.finish(None if task.cancelled() else task.exception())

    def resolve(self, parked: asyncio.Future[Any]) -> None:
        """Let a parked pump go on (the server's loop thread calls this)."""
        if self._loop is not None:
            self._soon(_settle, parked)

    def resolve_all(self, parked: list[asyncio.Future[Any]]) -> None:
        """Let several parked futures go on with one hop (the server's loop
        thread calls this once per turn with the WebSockets it woke)."""
        if self._loop is not None:
            self._soon(_settle_all, parked)

    def cancel(self, pending: _Pending | _Stream) -> None:
        """Cancel the task answering ``pending`` (its client went away); any thread."""
        if self._loop is None:
            return

        def cancel() -> None:
            task = self._by_pending.get(pending)
            if task is not None:
                task.cancel()

        self._soon(cancel)

    def _done(self, task: asyncio.Task[Any]) -> None:
        pending = self._tasks.pop(task)
        assert pending is not None  # a task of _run
        self._by_pending.pop(pending, None)
        if task.cancelled():
            pending.fail(self._aio.CancelledError("the server stopped before the handler finished"))  # type: ignore[union-attr]
        elif (exc := task.exception()) is not None:
            pending.fail(exc)
        else:
            pending.done(task.result())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine on the loop, fire and forget (background tasks)."""
        with self._spawned_cv:
            self._spawned += 1

        def finished(task: asyncio.Task[Any]) -> None:
            self._tasks.pop(task, None)
            with self._spawned_cv:
                self._spawned -= 1
                self._spawned_cv.notify_all()

        def start() -> None:
            task = self._aio.ensure_future(coro, loop=self._loop)  # type: ignore[union-attr]
            self._tasks[task] = None
            task.add_done_callback(finished)

        self._soon(start)

    def wait_background(self, timeout: float) -> bool:
        """Wait until every coroutine ``spawn`` started has ended (TestClient: a
        request's background tasks have run when it returns). False on timeout."""
        with self._spawned_cv:
            return self._spawned_cv.wait_for(lambda: self._spawned == 0, timeout)

    def run_sync(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine to completion from another thread (rare paths only).
        On the loop's own thread (inside a step of the server, e.g. an async
        exception handler for a sync handler's error) the loop cannot be
        waited for: the coroutine runs to completion on a loop of its own."""
        if self._on_loop():
            import asyncio

            once = asyncio.new_event_loop()  # not asyncio.run(): it would reset SIGINT's handler
            try:
                return once.run_until_complete(coro)
            finally:
                once.close()
        loop = self._running()  # imports asyncio, the first time
        return self._aio.run_coroutine_threadsafe(coro, loop).result()  # type: ignore[union-attr]

    def cancel_all(self) -> None:
        if self._loop is not None:
            self._soon(lambda: [t.cancel() for t in list(self._tasks)])

    def close(self) -> None:
        """Stop the loop once what still runs there has ended (a closed stream's
        ``aclose()``, background tasks), waiting at most CLOSE_GRACE_S."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or (thread is None and self._loop_ident is not None):
                return  # never made, or serve() runs it: closed when that ends
            self._loop = self._thread = self._loop_ident = None
        aio = self._aio
        assert aio is not None

        async def settle() -> None:
            running = [t for t in self._tasks if not t.done()]
            if running:
                await aio.wait(running, timeout=CLOSE_GRACE_S)

        if thread is not None:
            with contextlib.suppress(Exception):  # a loop that is stuck is stopped all the same
                aio.run_coroutine_threadsafe(settle(), loop).result(CLOSE_GRACE_S + 1)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        else:
            with contextlib.suppress(Exception):
                loop.run_until_complete(settle())
        loop.close()


def _settle(parked: asyncio.Future[Any]) -> None:
    if not parked.done():
        parked.set_result(None)


def _settle_all(parked: list[asyncio.Future[Any]]) -> None:
    for fut in parked:
        if not fut.done():
            fut.set_result(None)
