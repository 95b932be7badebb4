"""The asyncio event loop that async handlers run on.

A thread started on the first async request, so that sync-only apps never
pay for it. The C core hands over a coroutine and a _Pending; the task's
result or exception goes back through the _Pending.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Coroutine
from types import ModuleType
from typing import TYPE_CHECKING, Any

from catzilla._core import _Pending, _Stream

if TYPE_CHECKING:
    import asyncio


CLOSE_GRACE_S = 2.0


class AsyncRunner:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._spawned = 0  # spawn()ed coroutines not yet ended
        self._spawned_cv = threading.Condition()
        self._by_pending: dict[_Pending | _Stream, asyncio.Task[Any]] = {}  # loop thread only
        self._aio: ModuleType | None = None  # asyncio, imported by the first async request

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                import asyncio

                self._aio = asyncio
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="catzilla-asyncio", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coro: Awaitable[Any], pending: _Pending) -> None:
        loop = self._loop or self._start()
        loop.call_soon_threadsafe(self._run, coro, pending)

    def _run(self, coro: Awaitable[Any], pending: _Pending) -> None:
        task = self._aio.ensure_future(coro)  # type: ignore[union-attr]
        self._tasks.add(task)
        self._by_pending[pending] = task
        task.add_done_callback(lambda t: self._done(t, pending))

    def pump(self, source: Any, stream: _Stream) -> None:
        """Iterate an async response body on the loop, pushing its pieces to
        ``stream`` (any thread); ``cancel(stream)`` stops it."""
        loop = self._loop or self._start()
        loop.call_soon_threadsafe(self._start_pump, source, stream)

    def _start_pump(self, source: Any, stream: _Stream) -> None:
        task = self._aio.ensure_future(self._pump(source, stream))  # type: ignore[union-attr]
        self._tasks.add(task)
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
        self._tasks.discard(task)
        self._by_pending.pop(stream, None)
        stream.finish(None if task.cancelled() else task.exception())

    def resolve(self, parked: asyncio.Future[Any]) -> None:
        """Let a parked pump go on (the loop thread calls this)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(_settle, parked)

    def cancel(self, pending: _Pending | _Stream) -> None:
        """Cancel the task answering ``pending`` (its client went away); any thread."""
        loop = self._loop
        if loop is None:
            return

        def cancel() -> None:
            task = self._by_pending.get(pending)
            if task is not None:
                task.cancel()

        loop.call_soon_threadsafe(cancel)

    def _done(self, task: asyncio.Task[Any], pending: _Pending) -> None:
        self._tasks.discard(task)
        self._by_pending.pop(pending, None)
        if task.cancelled():
            pending.fail(self._aio.CancelledError("the server stopped before the handler finished"))  # type: ignore[union-attr]
        elif (exc := task.exception()) is not None:
            pending.fail(exc)
        else:
            pending.done(task.result())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine on the loop, fire and forget (background tasks)."""
        loop = self._loop or self._start()
        with self._spawned_cv:
            self._spawned += 1

        def finished(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            with self._spawned_cv:
                self._spawned -= 1
                self._spawned_cv.notify_all()

        def start() -> None:
            task = self._aio.ensure_future(coro)  # type: ignore[union-attr]
            self._tasks.add(task)
            task.add_done_callback(finished)

        loop.call_soon_threadsafe(start)

    def wait_background(self, timeout: float) -> bool:
        """Wait until every coroutine ``spawn`` started has ended (TestClient: a
        request's background tasks have run when it returns). False on timeout."""
        with self._spawned_cv:
            return self._spawned_cv.wait_for(lambda: self._spawned == 0, timeout)

    def run_sync(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine to completion from another thread (rare paths only)."""
        loop = self._loop or self._start()
        return self._aio.run_coroutine_threadsafe(coro, loop).result()  # type: ignore[union-attr]

    def cancel_all(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in list(self._tasks)])

    def close(self) -> None:
        """Stop the loop once what still runs there has ended (a closed stream's
        ``aclose()``, background tasks), waiting at most CLOSE_GRACE_S."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            aio = self._aio
            assert aio is not None

            async def settle() -> None:
                running = [t for t in self._tasks if not t.done()]
                if running:
                    await aio.wait(running, timeout=CLOSE_GRACE_S)

            with contextlib.suppress(Exception):  # a loop that is stuck is stopped all the same
                aio.run_coroutine_threadsafe(settle(), loop).result(CLOSE_GRACE_S + 1)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()


def _settle(parked: asyncio.Future[Any]) -> None:
    if not parked.done():
        parked.set_result(None)
