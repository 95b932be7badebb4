"""A handler, analysed, planned and bound once: the endpoint the C core calls for its route.

``Binding.mode`` is ``MODE_NO_ARGS`` for a handler that needs nothing from the
request (the C core calls it with no arguments and builds no request object),
``MODE_DIRECT`` for one whose arguments the C core can take itself
(``catzilla.calling.plan``; the binder stays as its fallback) and
``MODE_REQUEST`` for the rest (the generated binder takes the ``RawRequest``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

from catzilla import models, streams
from catzilla.background import BackgroundTasks
from catzilla.calling import convert, plan, render
from catzilla.calling.bind import Binder
from catzilla.calling.signature import Dependant, analyze, callable_kind, split_annotated, type_hints
from catzilla.exceptions import CatzillaError
from catzilla.params import MODE_DIRECT, MODE_NO_ARGS, MODE_REQUEST, Depends, File, Undefined
from catzilla.request import HTTPConnection, Request
from catzilla.response import Response


def response_model_of(handler: Callable[..., Any], response_model: Any) -> Any:
    """The declared ``response_model``, else the return annotation when it is a model (FastAPI's rule)."""
    if response_model is not Undefined:
        return response_model
    ret = type_hints(handler).get("return", inspect.Parameter.empty)
    base, _ = split_annotated(ret)
    if base is inspect.Parameter.empty or base is None:
        return None
    if convert.is_class(base) and issubclass(base, Response):
        return None
    if _names_response(base):
        # Response | dict: neither a response class nor a type a model library can check
        raise CatzillaError(
            f"{getattr(handler, '__qualname__', handler)!r} returns {base!r}, which mixes a Response class "
            "with other types: that is no valid response model. Pass response_model=None to send "
            "what the handler returns as it is (FastAPI's rule)"
        )
    return base if models.contains_model(base) else None


def _names_response(tp: Any) -> bool:
    """A Response class among a type's arguments (``Response | dict``, ``list[Response]``)."""
    return any(
        (convert.is_class(a) and issubclass(a, Response)) or _names_response(a)
        for a in typing.get_args(tp)
        if a is not Ellipsis
    )


def uses_name(call: Callable[..., Any], name: str) -> bool:
    """Whether the code of ``call`` (or of a function nested in it) names ``name``
    (an attribute, a global): e.g. ``request.stream()``."""
    target = inspect.unwrap(call)
    method = getattr(type(target), "__call__", None)  # noqa: B004 (a callable instance)
    code = getattr(target, "__code__", None) or getattr(method, "__code__", None)
    todo = [code] if code is not None else []
    while todo:
        c = todo.pop()
        if name in c.co_names:
            return True
        todo.extend(k for k in c.co_consts if inspect.iscode(k))
    return False


# How the C core hands a route's request body over (add_route's body_mode).
BODY_WHOLE, BODY_STREAM, BODY_SPOOL = 0, 1, 2


class Binding:
    """How one handler is called for one route."""

    def __init__(
        self,
        path: str,
        handler: Callable[..., Any],
        *,
        dependencies: Sequence[Depends] = (),
        status_code: int | None = None,
        response_model: Any = Undefined,
        response_class: type[Response] | None = None,
        response_model_exclude_none: bool = False,
        response_model_exclude_unset: bool = False,
        response_model_include: Any = None,
        response_model_exclude: Any = None,
        overrides: dict[Any, Any] | None = None,
        run_background: Callable[[BackgroundTasks], None] | None = None,
        request_class: type[HTTPConnection] = Request,
        strict_content_type: bool = True,
        form_limits: dict[str, int] | None = None,
    ) -> None:
        self.request_class = request_class
        self.strict_content_type = strict_content_type
        self.form_limits = form_limits or None
        # A handler that yields streams its items (catzilla.streams): the route calls
        # the stream's endpoint, which returns the streaming response.
        self.stream: streams.Stream | None = None
        if callable_kind(handler) in ("generator", "asyncgen"):
            self.stream = streams.Stream(
                handler,
                type_hints(handler),
                response_class,
                status_code,
                response_model_exclude_none,
                response_model_exclude_unset,
            )
            handler, response_model = self.stream.endpoint, None
        self.websocket_run: Callable[..., Any] | None = None  # a WebSocket route's endpoint (app.py)
        self.path = path
        self.handler = handler
        self.dependencies = list(dependencies)
        self._dependency_calls: list[
            tuple[Callable[..., Any], bool, tuple[str, ...]]
        ] = []  # (callable, use_cache, scopes)
        for dependency in self.dependencies:
            if not isinstance(dependency, Depends):
                raise TypeError(f"dependencies must be Depends(...) objects, got {dependency!r}")
            if dependency.dependency is None:
                raise TypeError(f"{path}: route dependencies need a callable: Depends(fn), got {dependency!r}")
            scopes = tuple(getattr(dependency, "scopes", ()))
            self._dependency_calls.append((dependency.dependency, dependency.use_cache, scopes))
        self.overrides = overrides
        self.run_background = run_background
        self.dependant = analyze(handler, path)
        self.extra = [
            analyze(call, path, use_cache=use_cache, _scopes=scopes)
            for call, use_cache, scopes in self._dependency_calls
        ]
        for dependant, (call, _, _) in zip(self.extra, self._dependency_calls, strict=True):
            dependant.declared = call
        self.status_code = status_code
        self.response_model = response_model_of(handler, response_model)
        self.finish = render.make_finish(
            status_code,
            self.response_model,
            response_class,
            response_model_exclude_none,
            response_model_exclude_unset,
            response_model_include,
            response_model_exclude,
        )
        # the C core's own rendering of a model knows nothing of include/exclude
        filtered = response_model_include is not None or response_model_exclude is not None
        d = self.dependant
        # True when the endpoint may return a coroutine.
        self.is_async = d.any_async() or any(e.any_async() for e in self.extra)
        # The C core hands the body to the handler as it arrives when the
        # handler (or a dependency) iterates request.stream() in async code, and
        # nothing else needs the body whole first (a body parameter, sync code).
        walked = [x for top in (d, *self.extra) for x in top.walk()]
        readers = [x for x in walked if "request" in x.specials.values()]
        # A route with file parameters has its multipart body spooled in C as it
        # arrives (files to disk past 1 MiB), then the handler runs.
        params = [p for x in walked for p in x.params]
        if any(isinstance(p.marker, File) for p in params):
            self.body_mode = BODY_SPOOL
        elif (
            any(uses_name(x.call, "stream") for x in readers)
            and all(x.is_async for x in readers)
            and not any(p.source in ("body", "form") for p in params)
        ):
            self.body_mode = BODY_STREAM
        else:
            self.body_mode = BODY_WHOLE
        needs_request = d.params or d.deps or d.specials or self.extra
        self.mode = MODE_REQUEST if needs_request else MODE_NO_ARGS
        self._override_cache: dict[Any, Callable[..., Any]] = {}
        self._bind = (
            self._binder(self.dependant, self.extra, with_override_check=True) if self.mode == MODE_REQUEST else None
        )
        self.plan = (
            plan.plan_for(
                d,
                self.extra,
                self.finish,
                200 if status_code is None else status_code,
                None if filtered else self.response_model,
                response_class,
                response_model_exclude_none,
                response_model_exclude_unset,
                strict_content_type,
            )
            if self.mode == MODE_REQUEST
            else None
        )
        if self.plan is not None:
            self.mode = MODE_DIRECT

    def _binder(self, dependant: Dependant, extra: list[Dependant], with_override_check: bool) -> Callable[..., Any]:
        return Binder(
            dependant,
            extra=extra,
            finish=self.finish,
            overrides=self.overrides,
            override_hook=self._with_overrides if with_override_check and self.overrides is not None else None,
            run_background=self.run_background,
            request_class=self.request_class,
            strict_content_type=self.strict_content_type,
            form_limits=self.form_limits,
        ).build()

    def _with_overrides(self, raw: Any, request: Any = None) -> Any:
        assert self.overrides is not None
        key = tuple(self.overrides.items())
        fn = self._override_cache.get(key)
        if fn is None:
            snapshot = dict(self.overrides)
            dependant = analyze(self.handler, self.path, overrides=snapshot)
            extra = [
                analyze(snapshot.get(call, call), self.path, use_cache=use_cache, overrides=snapshot, _scopes=scopes)
                for call, use_cache, scopes in self._dependency_calls
            ]
            fn = self._binder(dependant, extra, with_override_check=False)
            self._override_cache = {key: fn}
        return fn(raw, request)

    def endpoint(self) -> list[Any]:
        """The route's endpoint list for the C core: ``[mode, callable]`` or ``[2, handler, plan, binder]``."""
        if self.plan is not None:
            # A sync result is finished by the C core (the plan); a coroutine's by the wrapper.
            call = self._finished_handler() if self.is_async else self.handler
            return [MODE_DIRECT, call, self.plan, self._bind]
        return [self.mode, self._bind if self.mode == MODE_REQUEST else self._finished_handler()]

    def _finished_handler(self) -> Callable[..., Any]:
        """The handler with the route's finish step applied to what it returns."""
        finish = self.finish
        if finish is None:
            return self.handler
        handler = self.handler
        if inspect.iscoroutinefunction(handler):

            async def finish_async(*args: Any) -> Any:
                return finish(await handler(*args))

            return finish_async

        def finish_sync(*args: Any) -> Any:
            return finish(handler(*args))

        return finish_sync

    def call(self, raw: Any, request: Any) -> Any:
        """Call with a request at hand (middleware): may return a coroutine."""
        if self._bind is not None:
            return self._bind(raw, request)
        return self._finished_handler()()

    @property
    def source(self) -> str | None:
        """The generated binder's source (for debugging)."""
        return getattr(self._bind, "__catzilla_source__", None)
