"""``BackgroundTasks``: work that runs after the handler's response is ready (as in FastAPI).

Tasks run on the app's asyncio loop once the response has been handed
to the server: async functions are awaited there, sync ones run in its
default thread pool, so neither delays the response nor blocks the loop.
Served by another ASGI server (catzilla.asgi_app), they run on its loop once
the response was sent, before the ASGI call returns, as Starlette runs them.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("catzilla.error")

# Set while an app answers a request over ASGI (catzilla.asgi_app): the request's
# tasks are held here and run after its response was sent, as Starlette runs them,
# instead of on the app's own asyncio loop.
deferred_background: contextvars.ContextVar[list[BackgroundTasks] | None] = contextvars.ContextVar(
    "catzilla_deferred_background", default=None
)


class BackgroundTask:
    """One call to make after the response (Starlette's): ``Response(...,
    background=BackgroundTask(func, *args, **kwargs))``. Calling it makes the
    coroutine that runs it: an async ``func`` is awaited, a sync one runs in
    the loop's default thread pool; what it raises is logged."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs

    async def __call__(self) -> None:
        import asyncio  # only apps with async work load it

        try:
            if inspect.iscoroutinefunction(self.func):
                await self.func(*self.args, **self.kwargs)
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, functools.partial(self.func, *self.args, **self.kwargs))
        except Exception:
            log.exception("Exception in background task %r", self.func)


class BackgroundTasks(BackgroundTask):
    """Declare a ``BackgroundTasks`` parameter and ``add_task(fn, *args, **kwargs)``
    (FastAPI's); or give one to a response's ``background`` (Starlette's). The
    tasks run in order; one that raises is logged and the next runs."""

    def __init__(self, tasks: Sequence[BackgroundTask] | None = None) -> None:
        self.tasks: list[BackgroundTask] = list(tasks or [])

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    async def __call__(self) -> None:
        for task in self.tasks:
            await task()
