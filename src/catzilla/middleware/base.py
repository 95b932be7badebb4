"""Middleware protocols and the chains built from them, once per route when the server starts.

Order: app middleware (the one added last is outermost, as in Starlette),
then the route's groups' (outer group first), then the route's own (listed
order, first is outermost), then the handler. A handler's exception
becomes its error response inside the chain, so every middleware sees a
Response. A chain is sync (run on the server thread) unless the handler or
a middleware is async; then it runs as one coroutine on the asyncio loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from catzilla.request import Request
from catzilla.response import Response

CallNext = Callable[[Request], Any]
Next = Callable[[Request], Any]
MaybeAwaitable = Response | None | Awaitable[Response | None]


class Middleware:
    """Override ``before`` and/or ``after``; either may be ``async def``."""

    def before(self, request: Request) -> MaybeAwaitable:
        """Runs before the handler; a Response returned here is the answer (the handler is not called)."""
        return None

    def after(self, request: Request, response: Response) -> MaybeAwaitable:
        """Runs after the handler; return a Response to replace ``response`` (or None to keep it)."""
        return None


class BaseHTTPMiddleware:
    """Starlette's shape: override ``dispatch(request, call_next)`` (sync or async).

    In an async chain ``call_next(request)`` is awaitable; in a sync one it
    returns the Response.
    """

    def __init__(self, dispatch: Callable[..., Any] | None = None) -> None:
        if dispatch is not None:
            self.dispatch = dispatch  # type: ignore[method-assign]

    def dispatch(self, request: Request, call_next: CallNext) -> Any:
        raise NotImplementedError


def is_asgi_middleware(middleware: Any) -> bool:
    """Whether ``middleware`` is an ASGI middleware class (Starlette's convention:
    ``cls(app, **options)`` returns an ASGI app) rather than one of Catzilla's own
    (``Middleware``, ``BaseHTTPMiddleware``, a ``(request, call_next)`` function)."""
    if not isinstance(middleware, type) or issubclass(middleware, (Middleware, BaseHTTPMiddleware)):
        return False
    try:
        params = list(inspect.signature(middleware).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        return False
    if params[0].name == "app":
        return True
    # another name for the wrapped app: a required first argument and an async __call__
    call = inspect.getattr_static(middleware, "__call__", None)
    return params[0].default is params[0].empty and inspect.iscoroutinefunction(call)


def unpack_middleware(middleware: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]] | None:
    """``starlette.middleware.Middleware(cls, *args, **kwargs)`` as (cls, args, kwargs), else None."""
    cls = getattr(middleware, "cls", None)
    if isinstance(cls, type) and hasattr(middleware, "kwargs") and not isinstance(middleware, type):
        return cls, tuple(getattr(middleware, "args", ())), dict(middleware.kwargs)
    return None


def asgi_entry(middleware: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]] | None:
    """An ASGI middleware as (cls, args, kwargs): the class itself, or a
    ``starlette.middleware.Middleware(cls, ...)`` entry; None for Catzilla's own."""
    packed = unpack_middleware(middleware)
    if packed is not None and is_asgi_middleware(packed[0]):
        return packed
    return (middleware, (), {}) if is_asgi_middleware(middleware) else None


def _overrides(obj: Any, name: str) -> bool:
    method = getattr(type(obj), name, None)
    return method is not None and method is not getattr(Middleware, name)


class Layer:
    """One middleware, normalized: either hooks (before/after) or a dispatch function."""

    def __init__(self, obj: Any) -> None:
        if isinstance(obj, type):
            obj = obj()
        self.obj = obj
        self.before: Callable[..., Any] | None = None
        self.after: Callable[..., Any] | None = None
        self.dispatch: Callable[..., Any] | None = None
        if isinstance(obj, Middleware):
            self.before = obj.before if _overrides(obj, "before") else None
            self.after = obj.after if _overrides(obj, "after") else None
        elif isinstance(obj, BaseHTTPMiddleware) or hasattr(obj, "dispatch"):
            self.dispatch = obj.dispatch
        elif callable(obj):
            self.dispatch = obj
        else:
            raise TypeError(
                f"not a middleware: {obj!r} (use a Middleware, a BaseHTTPMiddleware or a function "
                "taking (request, call_next))"
            )
        self.is_async = any(inspect.iscoroutinefunction(f) for f in (self.before, self.after, self.dispatch) if f)


def sync_layer(layer: Layer, inner: Next) -> Next:
    if layer.dispatch is not None:
        dispatch = layer.dispatch
        return lambda request: dispatch(request, inner)
    before, after = layer.before, layer.after

    def call(request: Request) -> Response:
        if before is not None:
            early = before(request)
            if early is not None:
                return early  # type: ignore[no-any-return]
        response = inner(request)
        if after is not None:
            replaced = after(request, response)
            if replaced is not None:
                return replaced  # type: ignore[no-any-return]
        return response  # type: ignore[no-any-return]

    return call


def async_layer(layer: Layer, inner: Next) -> Next:
    if layer.dispatch is not None:
        dispatch = layer.dispatch
        if inspect.iscoroutinefunction(dispatch):

            async def call_dispatch(request: Request) -> Any:
                return await dispatch(request, inner)

            return call_dispatch

        async def call_sync_dispatch(request: Request) -> Any:
            # A sync dispatch around async code: it runs in a thread, and its
            # call_next waits for the inner chain on this loop.
            import asyncio  # only apps with async middleware load it

            loop = asyncio.get_running_loop()

            def blocking_next(req: Request) -> Any:
                return asyncio.run_coroutine_threadsafe(inner(req), loop).result()

            return await loop.run_in_executor(None, dispatch, request, blocking_next)

        return call_sync_dispatch
    before, after = layer.before, layer.after

    async def call(request: Request) -> Any:
        if before is not None:
            early = before(request)
            if inspect.isawaitable(early):
                early = await early
            if early is not None:
                return early
        response = await inner(request)
        if after is not None:
            replaced = after(request, response)
            if inspect.isawaitable(replaced):
                replaced = await replaced
            if replaced is not None:
                return replaced
        return response

    return call


def build_chain(
    layers: list[Layer],
    call_route: Callable[[Any, Request], Any],
    route_is_async: bool,
    to_response: Callable[[Any], Response],
    on_error: Callable[[Any, BaseException], Response],
    on_error_async: Callable[[Any, BaseException], Awaitable[Response]],
    request_class: type[Request] = Request,
) -> Callable[[Any], Any]:
    """The endpoint the C core calls (mode 1) for a route with middleware."""
    is_async = route_is_async or any(layer.is_async for layer in layers)
    inner: Next
    if is_async:

        async def handler_async(request: Request) -> Response:
            try:
                value = call_route(request._raw, request)
                if inspect.isawaitable(value):
                    value = await value
                return to_response(value)
            except Exception as exc:
                return await on_error_async(request._raw, exc)

        inner = handler_async
        for layer in reversed(layers):
            inner = async_layer(layer, inner)
    else:

        def handler_sync(request: Request) -> Response:
            try:
                return to_response(call_route(request._raw, request))
            except Exception as exc:
                return on_error(request._raw, exc)

        inner = handler_sync
        for layer in reversed(layers):
            inner = sync_layer(layer, inner)
    outer = inner

    def endpoint(raw: Any) -> Any:
        return outer(request_class(raw))

    return endpoint
