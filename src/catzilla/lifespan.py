"""Startup and shutdown: ``@app.on_event("startup")`` hooks or a ``lifespan`` context manager.

They run once per serving process (each worker, after the fork) around the
serving loop: startup before the socket is bound (a startup error stops
``listen()``), shutdown after the server has stopped. Async hooks run on the
app's asyncio loop, where async handlers run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

EVENTS = ("startup", "shutdown")


class Lifespan:
    def __init__(
        self,
        lifespan: Callable[[Any], Any] | None = None,
        on_startup: list[Callable[[], Any]] | None = None,
        on_shutdown: list[Callable[[], Any]] | None = None,
    ) -> None:
        self.lifespan = lifespan
        self.hooks: dict[str, list[Callable[[], Any]]] = {
            "startup": list(on_startup or []),
            "shutdown": list(on_shutdown or []),
        }
        self._cm: Any = None

    def add(self, event: str, fn: Callable[[], Any]) -> None:
        if event not in EVENTS:
            raise ValueError(f"event must be 'startup' or 'shutdown', got {event!r}")
        self.hooks[event].append(fn)

    def _run(self, result: Any, run_sync: Callable[[Coroutine[Any, Any, Any]], Any]) -> Any:
        return run_sync(result) if inspect.iscoroutine(result) else result

    def startup(self, app: Any, run_sync: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        for fn in self.hooks["startup"]:
            self._run(fn(), run_sync)
        if self.lifespan is not None:
            cm = self._context(app)
            self._entered(app, cm, run_sync(cm.__aenter__()) if hasattr(cm, "__aenter__") else cm.__enter__())

    async def startup_async(self, app: Any) -> None:
        """``startup`` on the running loop (the app served by another ASGI server):
        async hooks and an async ``lifespan`` run on that server's loop."""
        for fn in self.hooks["startup"]:
            result = fn()
            if inspect.isawaitable(result):
                await result
        if self.lifespan is not None:
            cm = self._context(app)
            self._entered(app, cm, await cm.__aenter__() if hasattr(cm, "__aenter__") else cm.__enter__())

    def _context(self, app: Any) -> Any:
        """The lifespan's context manager for `app`, sync or async."""
        assert self.lifespan is not None
        cm = self.lifespan(app)
        if not hasattr(cm, "__aenter__") and not hasattr(cm, "__enter__"):
            raise TypeError("lifespan(app) must return a context manager (use @asynccontextmanager)")
        return cm

    def _entered(self, app: Any, cm: Any, state: Any) -> None:
        """Keep `cm` for the shutdown; a mapping it yielded becomes `app.state`."""
        self._cm = cm
        if isinstance(state, Mapping):
            for key, value in state.items():
                setattr(app.state, key, value)

    async def shutdown_async(self, app: Any) -> None:
        """``shutdown`` on the running loop (see ``startup_async``)."""
        cm, self._cm = self._cm, None
        try:
            if cm is not None:
                if hasattr(cm, "__aexit__"):
                    await cm.__aexit__(None, None, None)
                else:
                    cm.__exit__(None, None, None)
        finally:
            for fn in self.hooks["shutdown"]:
                result = fn()
                if inspect.isawaitable(result):
                    await result

    def shutdown(self, app: Any, run_sync: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        cm, self._cm = self._cm, None
        try:
            if cm is not None:
                if hasattr(cm, "__aexit__"):
                    run_sync(cm.__aexit__(None, None, None))
                else:
                    cm.__exit__(None, None, None)
        finally:
            for fn in self.hooks["shutdown"]:
                self._run(fn(), run_sync)
