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
from collections.abc import Callable
from typing import Any

log = logging.getLogger("catzilla.error")

# Set while an app answers a request over ASGI (catzilla.asgi_app): the request's
# tasks are held here and run after its response was sent, as Starlette runs them,
# instead of on the app's own asyncio loop.
deferred_background: contextvars.ContextVar[list[BackgroundTasks] | None] = contextvars.ContextVar(
    "catzilla_deferred_background", default=None
)


class BackgroundTasks:
    """Declare a ``BackgroundTasks`` parameter and ``add_task(fn, *args, **kwargs)``."""

    def __init__(self) -> None:
        self.tasks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.tasks.append((func, args, kwargs))

    async def run(self) -> None:
        import asyncio  # only apps with async work load it

        loop = asyncio.get_running_loop()
        for func, args, kwargs in self.tasks:
            try:
                if inspect.iscoroutinefunction(func):
                    await func(*args, **kwargs)
                else:
                    await loop.run_in_executor(None, functools.partial(func, *args, **kwargs))
            except Exception:
                log.exception("Exception in background task %r", func)
