"""The Catzilla application object."""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from catzilla import _core, logs, memory, serving, threadpool, websockets
from catzilla.background import BackgroundTasks, deferred_background
from catzilla.calling import render
from catzilla.calling.call import Binding
from catzilla.datastructures import FORM_LIMITS, State, c_form_limits, check_form_limits
from catzilla.exceptions import (
    ErrorHandlers,
    HTTPException,
    RequestValidationError,
    is_cancellation,
    log,
    server_error_response,
)
from catzilla.lifespan import Lifespan
from catzilla.memory import AppMemory
from catzilla.middleware.base import Layer, asgi_entry, build_chain, is_asgi_middleware, unpack_middleware
from catzilla.params import MODE_REQUEST, MODE_STATIC, MODE_WS, Depends, Undefined
from catzilla.proxy import TrustedHosts
from catzilla.request import Request
from catzilla.response import FileResponse, Response, StreamingResponse, json_dumps
from catzilla.routing import (
    NoMatchFound,
    Route,
    RouteDecorators,
    RouterGroup,
    Webhooks,
    check_options,
    check_path,
    check_prefix,
    fill_path,
    include_options,
    join_path,
    merge_options,
    normalize_methods,
)
from catzilla.runner import AsyncRunner, check_loop

if TYPE_CHECKING:
    from catzilla.asgi import ASGIMount

F = TypeVar("F", bound=Callable[..., Any])

# Server settings accepted by listen(); defaults live in the C core
# (csrc/server/cz_server.h, csrc/http/cz_http.h) and in docs/server.md.
LIMITS = (
    "max_connections",
    "max_connections_per_client",
    "header_timeout",
    "body_timeout",
    "keepalive_timeout",
    "write_timeout",
    "shutdown_timeout",
    "max_write_buffer",
    "max_write_buffer_total",
    "max_url_length",
    "max_header_size",
    "max_headers",
    "max_body_size",
    "backlog",
    "ws_per_message_deflate",
    "ws_max_size",
    "ws_ping_interval",
    "ws_ping_timeout",
)


def check_limits(limits: dict[str, Any]) -> dict[str, float]:
    """listen()'s server settings, checked: known names, numbers > 0."""
    config: dict[str, float] = {}
    for key, value in limits.items():
        if key not in LIMITS:
            raise TypeError(f"listen() got an unknown setting {key!r}; known: {', '.join(LIMITS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{key} must be a number > 0, got {value!r}")
        config[key] = float(value)
    return config


def make_recycling(
    max_requests: int | None, jitter: int | None, max_rss_mb: float | None, max_allocated_mb: float | None
) -> serving.Recycling:
    """The worker recycling limits, checked (None: no such limit)."""
    for name, value in (("limit_max_requests", max_requests), ("limit_max_requests_jitter", jitter)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be an int >= 0 or None, got {value!r}")
    for name, mib in (("workers_max_rss", max_rss_mb), ("max_allocated_mb", max_allocated_mb)):
        if mib is not None and (
            isinstance(mib, bool) or not isinstance(mib, (int, float)) or not math.isfinite(mib) or mib <= 0
        ):
            raise ValueError(f"{name} must be a number of MiB > 0 or None, got {mib!r}")
    if jitter is None:
        jitter = (max_requests or 0) // 10
    return serving.Recycling(
        max_requests=max_requests or None,
        max_requests_jitter=jitter,
        max_rss_mb=None if max_rss_mb is None else float(max_rss_mb),
        max_allocated_mb=None if max_allocated_mb is None else float(max_allocated_mb),
    )


def check_seconds(value: object, what: str) -> float:
    """A duration in seconds >= 0 (None or 0: off)."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a number of seconds >= 0 or None, got {value!r}")
    return float(value)


def check_body_size(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: max_body_size must be an int >= 1 (bytes), got {value!r}")
    return value


def check_asgi_options(cls: Any, args: tuple[Any, ...], options: dict[str, Any]) -> None:
    """An ASGI middleware's options against its signature: a wrong one fails when it
    is added, naming the class and the option, not when the app starts serving."""
    try:
        inspect.signature(cls).bind(None, *args, **options)
    except TypeError as exc:
        raise TypeError(f"{cls.__qualname__}: {exc}") from None


def log_error(message: str, exc: BaseException) -> None:
    """A failure no client can be told of (e.g. a stream cut after its head was sent)."""
    logging.getLogger("catzilla.error").error(message, exc_info=exc)


def background_runner(runner: AsyncRunner) -> Callable[[BackgroundTasks], None]:
    def run(tasks: BackgroundTasks) -> None:
        held = deferred_background.get()
        if held is not None:  # over ASGI: after the response is sent (catzilla.asgi_app)
            held.append(tasks)
            return
        runner.spawn(tasks())

    return run


class Catzilla(RouteDecorators):
    """A Catzilla application.

    The memory allocator is chosen here, once: ``use_jemalloc=True`` (the
    default) uses jemalloc when this build has it and it starts, and falls
    back to malloc with a message on stderr otherwise. ``allocator`` names a
    backend instead (``"auto"``, ``"jemalloc"``, ``"mimalloc"``,
    ``"malloc"``; ``allocator="jemalloc"`` with ``use_jemalloc=False`` is an
    error). It cannot
    be switched afterwards. With ``allocator_scope="process"`` (the default)
    the first such app in a process also takes the interpreter's memory
    (Python objects) onto that allocator; ``"app"`` keeps it to the C core's
    buffers (docs/memory.md).

    ``title``, ``version``, ``description``, ``openapi_tags`` and ``servers``
    (and ``summary``, ``terms_of_service``, ``contact``, ``license_info``) describe
    the API in ``/openapi.json``; ``docs_url=None`` turns off ``/docs``,
    ``redoc_url=None`` the ``/redoc`` page, ``openapi_url=None`` all three.
    ``default_response_class`` is the response class of routes that name none.
    ``strict_content_type=True`` (the default, as in FastAPI) refuses a JSON
    body sent without Content-Type (422); ``False`` parses it as JSON.
    ``form_limits`` (FastAPI's: a dict of ``max_files``, ``max_fields`` and
    ``max_part_size``, Starlette's 1000, 1000 and 1 MiB by default) bounds
    the forms of routes with ``Form``/``File`` parameters (400 past them);
    groups and routes override it key by key.
    ``debug=True`` puts the exception and its traceback into 500 answers (for
    development only; ``production=True`` never does). By default a 500 says
    only ``{"detail": "Internal Server Error"}`` and the traceback goes to
    the ``catzilla.error`` logger.
    ``dependencies`` apply to every route added afterwards; ``middleware`` is
    a list, outermost first; ``lifespan``, ``on_startup`` and ``on_shutdown``
    as in FastAPI.

    Observability (docs/observability.md), what ``catzilla run`` sets from
    ``--access-log/--no-access-log``, ``--log-level``, ``--log-config`` and
    ``--metrics``: ``access_log=True`` logs every request to the
    ``catzilla.access`` logger, the line formatted in C (``access_log_format``
    ``"common"``, ``"json"`` for JSON lines, or a callable taking the
    request's fields, which costs a Python call per request); ``log_level``
    and ``log_config`` (a dictConfig dict, a JSON/YAML file or an INI file)
    configure logging as uvicorn does when the app starts serving.
    ``metrics=True`` serves ``metrics_path`` (``/metrics``) in the Prometheus
    text format; ``memory_dashboard="/__catzilla__/memory"`` (or ``True``
    for that path) serves a live memory page there. Both are off by default.
    ``route_memory`` keeps, per route, the bytes the C core allocates for
    each request and the most one request held (``get_memory_stats()["routes"]``,
    and ``/metrics``); ``None`` (the default) follows ``metrics``.
    """

    def __init__(
        self,
        *,
        use_jemalloc: bool = True,
        allocator: str = "auto",
        allocator_scope: str = "process",
        memory_profiling: bool = False,
        auto_memory_tuning: bool = True,
        memory_stats_interval: float = 60,
        production: bool = False,
        debug: bool = False,
        threadpool_size: int = threadpool.DEFAULT_SIZE,
        loop: str = "auto",
        max_body_size: int | None = None,
        form_limits: dict[str, int] | None = None,
        ws_per_message_deflate: bool = True,
        ws_max_size: int = 16 * 1024 * 1024,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        title: str = "Catzilla",
        summary: str | None = None,
        version: str = "0.1.0",
        description: str = "",
        terms_of_service: str | None = None,
        contact: dict[str, Any] | None = None,
        license_info: dict[str, Any] | None = None,
        openapi_url: str | None = "/openapi.json",
        docs_url: str | None = "/docs",
        redoc_url: str | None = "/redoc",
        swagger_ui_parameters: dict[str, Any] | None = None,
        openapi_tags: list[dict[str, Any]] | None = None,
        servers: list[dict[str, Any]] | None = None,
        root_path: str = "",
        root_path_in_servers: bool = True,
        default_response_class: type[Response] | None = None,
        separate_input_output_schemas: bool = True,
        generate_unique_id_function: Callable[[Route], str] | None = None,
        strict_content_type: bool = True,
        responses: dict[Any, Any] | None = None,
        dependencies: Iterable[Depends] | None = None,
        middleware: Iterable[Any] | None = None,
        lifespan: Callable[[Any], Any] | None = None,
        on_startup: Iterable[Callable[[], Any]] | None = None,
        on_shutdown: Iterable[Callable[[], Any]] | None = None,
        access_log: bool | None = None,
        access_log_format: str | Callable[[dict[str, Any]], str] = "common",
        log_level: str | int | None = None,
        log_config: str | dict[str, Any] | None = None,
        metrics: bool = False,
        metrics_path: str = "/metrics",
        memory_dashboard: str | bool | None = None,
        route_memory: bool | None = None,
    ) -> None:
        self.access_log = memory.check_bool("access_log", access_log) if access_log is not None else False
        if not (callable(access_log_format) or access_log_format in logs.ACCESS_FORMATS):
            raise ValueError(f"access_log_format must be 'common', 'json' or a callable, got {access_log_format!r}")
        self.access_log_format = access_log_format
        logs.check_level(log_level)
        self.log_level = log_level
        self.log_config = log_config
        self.metrics = memory.check_bool("metrics", metrics)
        self.route_memory = memory.check_bool("route_memory", route_memory) if route_memory is not None else None
        check_path(metrics_path)
        self.metrics_path = metrics_path
        if memory_dashboard is True:
            memory_dashboard = "/__catzilla__/memory"
        elif memory_dashboard is False:
            memory_dashboard = None
        if memory_dashboard is not None:
            check_path(memory_dashboard)
        self.memory_dashboard: str | None = memory_dashboard
        self._observability_installed = False
        self.production = memory.check_bool("production", production)
        self.debug = memory.check_bool("debug", debug)
        self.threadpool_size = threadpool.check_size(threadpool_size)
        self.loop = check_loop(loop)  # the async handlers' event loop (uvicorn's --loop)
        self.max_body_size = None if max_body_size is None else check_body_size(max_body_size, "Catzilla()")
        self.form_limits = check_form_limits(form_limits, "Catzilla()")  # over FORM_LIMITS, key by key
        # WebSockets (uvicorn's names): permessage-deflate for clients that offer it; a message's bound (1009).
        self.ws_per_message_deflate = memory.check_bool("ws_per_message_deflate", ws_per_message_deflate)
        self.ws_max_size = check_body_size(ws_max_size, "Catzilla(ws_max_size=...)")
        # Keep-alive: a ping after ws_ping_interval s without one; no pong within ws_ping_timeout s closes 1011.
        self.ws_ping_interval = check_seconds(ws_ping_interval, "ws_ping_interval")
        self.ws_ping_timeout = check_seconds(ws_ping_timeout, "ws_ping_timeout")
        backend, jemalloc_requested = memory.resolve_allocator(allocator, use_jemalloc)
        self._memory = AppMemory(
            allocator=backend,
            use_jemalloc=jemalloc_requested,
            scope=memory.check_scope(allocator_scope),
            memory_profiling=memory.check_bool("memory_profiling", memory_profiling),
            auto_memory_tuning=memory.check_bool("auto_memory_tuning", auto_memory_tuning),
            memory_stats_interval=memory.check_interval(memory_stats_interval),
        )
        self._server = _core.Server(self._memory.allocator)
        self._route_names: dict[int, str] = {}  # C route index -> "GET /path", for log lines
        self._registered: set[tuple[str, str]] = set()  # (method, path) served
        self._routes: list[Route] = []
        self._endpoints: list[tuple[Route, list[Any], list[Layer]]] = []  # [mode, callable] per route
        self._mounts: list[tuple[str, Any, str | None, list[Any] | None]] = []  # (path, app, name, endpoint)
        self._ws_mounts: list[tuple[ASGIMount, Callable[..., Any]]] = []  # ASGI mounts, their WebSocket runs
        self._mounted_patterns: set[tuple[str, str]] = set()  # sub-app routes added to this server
        self.root_path = root_path
        self.root_path_given = bool(root_path)  # the app's own, not a mount's nor a proxy's
        self.mounted_at = ""  # the paths of the mounts that serve this app, in its root_path
        self.root_path_in_servers = root_path_in_servers
        # Proxy headers (X-Forwarded-*, Forwarded): off unless turned on; then believed
        # only from forwarded_allow_ips (see catzilla.proxy). `catzilla run` turns them on.
        self._proxy_headers = False
        self._forwarded_allow_ips = TrustedHosts("127.0.0.1")
        self._proxy_trusted: TrustedHosts | None = None
        self._auto_options: dict[str, list[Any]] = {}
        self._errors = ErrorHandlers()
        self._runner = AsyncRunner(self.loop)
        self._stop_requested = False
        self.port: int | None = None  # the bound port while serving
        self.state = State()
        self.title, self.version, self.description = title, version, description
        self.summary = summary
        self.terms_of_service, self.contact, self.license_info = terms_of_service, contact, license_info
        self.openapi_tags = openapi_tags
        self.servers = servers
        self.openapi_url = openapi_url
        self.docs_url = docs_url if openapi_url is not None else None
        self.redoc_url = redoc_url if openapi_url is not None else None
        self.swagger_ui_parameters = swagger_ui_parameters
        self.swagger_ui_oauth2_redirect_url = f"{docs_url}/oauth2-redirect" if docs_url else "/docs/oauth2-redirect"
        self.default_response_class = default_response_class
        self.separate_input_output_schemas = separate_input_output_schemas
        self.generate_unique_id_function = generate_unique_id_function
        self.responses = dict(responses or {})
        self.strict_content_type = bool(strict_content_type)
        self.openapi_schema: dict[str, Any] | None = None
        self.webhooks = Webhooks()  # described in the document's "webhooks", not served
        self.dependencies = list(dependencies or [])
        # one dict for the app's life: routes hold it (assigning a new one refills it)
        self._dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._middleware: list[Layer] = []  # Catzilla's own, outermost first
        # ASGI middleware classes (cls, args, kwargs), outermost first: they wrap the
        # app as an ASGI app (catzilla.asgi_app); none keeps every route on the C fast path.
        self._asgi_middleware: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        for m in middleware or []:
            self._add_middleware(m, {}, outermost=False)
        # id(endpoint list) -> (the list, the route's own endpoint list under the ASGI
        # middleware's, whether it is async): what the ASGI dispatcher calls.
        self._asgi_inner: dict[int, tuple[list[Any], list[Any], bool | None]] = {}
        self._asgi_async: dict[int, bool] = {}
        # id(endpoint list) -> where its sync handler runs over ASGI (threadpool.policy's
        # 0 inline until seen blocking, 1 the thread pool, 2 inline), and the route's name.
        self._asgi_policy: dict[int, int] = {}
        self._asgi_names: dict[int, str] = {}
        self._asgi_slow: dict[int, int] = {}  # slow calls in a row (_asgi_blocked)
        self._asgi_limits: dict[int, int] = {}  # id(endpoint list) -> the route's own max_body_size (0: none)
        # A route's own ASGI middleware (route or group middleware=[...]), by id(endpoint list),
        # and the chain built from it around the route when the app starts serving.
        self._asgi_route_mw: dict[int, list[tuple[Any, tuple[Any, ...], dict[str, Any]]]] = {}
        self._asgi_route_stacks: dict[int, Callable[..., Any]] = {}
        self._asgi_dispatcher: Any = None  # catzilla.asgi_app.Dispatcher, made by the first ASGI call
        self._asgi_stack: Any = None  # the ASGI middleware chain around it
        self._asgi_through: Any = None  # our server's endpoints into that chain
        self._asgi_prepared = False  # routes wired for the ASGI dispatcher (again after a change)
        self._lifespan = Lifespan(lifespan, list(on_startup or []), list(on_shutdown or []))
        # request.app, without a reference cycle (a dropped app is freed at once).
        app_ref = weakref.ref(self)
        self._request_class: type[Request] = type(
            "Request", (Request,), {"__slots__": (), "app": property(lambda _: app_ref())}
        )
        self._ws_running = websockets.Running()
        self._websocket_class: type[websockets.WebSocket] = type(
            "WebSocket", (websockets.WebSocket,), {"__slots__": (), "app": property(lambda _: app_ref())}
        )
        self._exception_sink: Callable[[BaseException], None] | None = None  # TestClient's
        self._docs_installed = False

    # -- proxy headers ---------------------------------------------------------------

    @property
    def proxy_headers(self) -> bool:
        """Honour X-Forwarded-For/Proto/Host and Forwarded from ``forwarded_allow_ips``."""
        return self._proxy_headers

    @proxy_headers.setter
    def proxy_headers(self, value: bool) -> None:
        self._proxy_headers = memory.check_bool("proxy_headers", value)
        self._proxy_trusted = self._forwarded_allow_ips if self._proxy_headers else None

    @property
    def forwarded_allow_ips(self) -> str:
        """The proxies believed: ``"*"`` or addresses/networks, comma-separated."""
        return self._forwarded_allow_ips.spec

    @forwarded_allow_ips.setter
    def forwarded_allow_ips(self, value: str | Iterable[str]) -> None:
        self._forwarded_allow_ips = TrustedHosts(value)
        self._proxy_trusted = self._forwarded_allow_ips if self._proxy_headers else None

    @property
    def dependency_overrides(self) -> dict[Callable[..., Any], Callable[..., Any]]:
        """``app.dependency_overrides[dep] = replacement`` swaps a dependency (for tests);
        ``app.dependency_overrides = {}`` (or ``None``) removes every override."""
        return self._dependency_overrides

    @dependency_overrides.setter
    def dependency_overrides(self, value: dict[Callable[..., Any], Callable[..., Any]] | None) -> None:
        if value is self._dependency_overrides:
            return
        new = dict(value or {})
        self._dependency_overrides.clear()
        self._dependency_overrides.update(new)

    # -- allocator ------------------------------------------------------------------

    @staticmethod
    def jemalloc_available() -> bool:
        """True when jemalloc is compiled into this build."""
        return memory.jemalloc_available()

    @staticmethod
    def get_available_allocators() -> list[str]:
        """The allocators this build can use: ``"malloc"``, then ``"jemalloc"`` and ``"mimalloc"`` when compiled in."""
        return memory.available_allocators()

    @property
    def has_jemalloc(self) -> bool:
        """True when this app's memory actually comes from jemalloc."""
        return self._memory.jemalloc_enabled

    @property
    def use_jemalloc(self) -> bool:
        """True when jemalloc was requested (it may have fallen back to malloc)."""
        return self._memory.requested

    def get_allocator_info(self) -> dict[str, Any]:
        m = self._memory
        return {
            "current_allocator": m.backend,
            "jemalloc_available": memory.jemalloc_available(),
            "jemalloc_requested": m.requested,
            "jemalloc_enabled": m.jemalloc_enabled,
            "memory_profiling": m.profiling,
            "auto_memory_tuning": m.tuning,
            "can_switch_allocator": False,
            "status": "closed" if m.closed else "initialized",
            "fallback_reason": m.fallback_reason,
            "allocator_scope": m.scope,
        }

    def get_memory_stats(self) -> dict[str, Any]:
        """The allocator's figures (docs/memory.md), and ``routes``: memory per
        route, ``{}`` unless ``route_memory`` (or ``metrics``) is on."""
        stats = self._memory.stats()
        stats["routes"] = memory.route_memory(self._server)
        return stats

    def get_server_stats(self) -> dict[str, int]:
        """Counters of the server while it runs (zeros otherwise): connections
        ``accepted``, ``rejected`` (over ``max_connections`` or stopping) and
        ``active_connections``; ``requests`` read; ``abandoned``: requests
        whose client left before the answer was sent (their async handlers
        are cancelled); ``evicted``: stalled connections closed to make room
        for a new client or to keep output memory under
        ``max_write_buffer_total``; ``output_held``: bytes of output held now."""
        return self._server.counters()

    def close(self) -> None:
        """Stop the app's background threads (memory monitor, asyncio loop). Idempotent."""
        self._memory.close()
        self._runner.close()

    # -- routes ------------------------------------------------------------------------

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        **options: Any,
    ) -> Route:
        """Register ``endpoint`` for ``path``; ValueError on a bad or conflicting route (the
        same method and path twice: the first answers, with a warning, as in FastAPI).

        Options: those of ``RouteDecorators`` (catzilla.routing).
        """
        check_options(options)
        return self._add(
            path, endpoint, methods, name, [*self.dependencies, *(options.pop("dependencies", None) or [])], options
        )

    def _add(
        self,
        path: str,
        handler: Callable[..., Any],
        methods: Iterable[str],
        name: str | None,
        dependencies: list[Depends],
        options: dict[str, Any],
        internal: bool = False,
    ) -> Route:
        """Register a route; ``internal`` ones (the docs) are not listed in ``app.routes``."""
        method_list = normalize_methods(methods)
        check_path(path)
        if not callable(handler):
            raise TypeError(f"route handler must be callable, got {handler!r}")
        status_code = options.get("status_code")
        if status_code is not None and (
            isinstance(status_code, bool) or not isinstance(status_code, int) or not 100 <= status_code <= 999
        ):
            raise ValueError(f"status_code must be an int in 100..999, got {status_code!r}")
        is_ws = bool(options.get("websocket"))
        if is_ws and not inspect.iscoroutinefunction(handler):
            raise TypeError(f"WebSocket route {path!r}: the handler must be an async function")
        response_class = options.get("response_class") or self.default_response_class
        responses = {**self.responses, **(options.get("responses") or {})}
        # Resolved once per route: the defaults, the app's, the route's (its group's merged in already).
        form_limits = {
            **FORM_LIMITS,
            **self.form_limits,
            **check_form_limits(options.get("form_limits"), f"route {path!r}"),
        }
        binding = Binding(
            path,
            handler,
            dependencies=dependencies,
            status_code=status_code,
            response_model=options.get("response_model", Undefined),
            response_class=response_class,
            response_model_include=options.get("response_model_include"),
            response_model_exclude=options.get("response_model_exclude"),
            response_model_exclude_none=bool(options.get("response_model_exclude_none")),
            response_model_exclude_unset=bool(options.get("response_model_exclude_unset")),
            overrides=self._dependency_overrides,
            run_background=background_runner(self._runner),
            request_class=self._websocket_class if is_ws else self._request_class,
            strict_content_type=self.strict_content_type,
            form_limits=form_limits,
        )
        route_mw = list(options.get("middleware") or [])
        asgi_mw = [entry for m in route_mw if (entry := asgi_entry(m)) is not None]  # around the route
        layers = [Layer(m) for m in route_mw if asgi_entry(m) is None]
        route = Route(
            path,
            frozenset(method_list),
            name or str(getattr(handler, "__name__", None) or repr(handler)),
            handler,
            tags=tuple(options.get("tags") or ()),
            summary=options.get("summary"),
            description=options.get("description"),
            response_description=options.get("response_description") or "Successful Response",
            responses=responses,
            deprecated=options.get("deprecated"),
            operation_id=options.get("operation_id"),
            include_in_schema=options.get("include_in_schema", True),
            status_code=status_code,
            response_class=response_class,
            openapi_extra=options.get("openapi_extra"),
            binding=binding,
            middleware=tuple(route_mw),
            websocket=is_ws,
        )
        # The endpoint list, shared by the route's methods; the C core reads it per request.
        endpoint = binding.endpoint()
        if is_ws:
            run = websockets.endpoint(
                binding.call, self._websocket_class, self._report_ws, self._report, self._ws_running
            )
            binding.websocket_run = run  # the innermost call of a middleware chain (_prepare)
            endpoint = [MODE_WS, run]
        policy = threadpool.policy(options.get("threadpool"), binding.is_async, path)
        own = options.get("max_body_size")
        max_body = 0 if own is None else check_body_size(own, f"route {path!r}")
        # The same method and path twice: the first answers, as in FastAPI (a warning
        # says the second is never reached); other conflicts are the C router's errors.
        fresh = [m for m in method_list if (m, path) not in self._registered]
        if len(fresh) < len(method_list):
            warnings.warn(
                f"route {', '.join(m for m in method_list if m not in fresh)} {path!r} is already registered: "
                f"{route.name} is never reached (the first route answers)",
                stacklevel=3,
            )
        if fresh:
            indexes = self._server.add_route(
                fresh, path, endpoint, policy, max_body, binding.body_mode, c_form_limits(form_limits)
            )  # every method or none
            for method, index in zip(fresh, indexes if isinstance(indexes, list) else [indexes], strict=True):
                self._route_names[index] = f"{method} {path}"
                self._registered.add((method, path))
        if not internal:
            self._routes.append(route)
        self._asgi_policy[id(endpoint)] = policy
        self._asgi_names[id(endpoint)] = f"{', '.join(method_list)} {path}"
        self._asgi_limits[id(endpoint)] = max_body
        if asgi_mw:
            for cls, args, kwargs in asgi_mw:
                check_asgi_options(cls, args, kwargs)
            self._asgi_route_mw[id(endpoint)] = asgi_mw
        self._endpoints.append((route, endpoint, layers))
        self.openapi_schema = None
        self._asgi_prepared = False
        return route

    def include_routes(
        self,
        group: RouterGroup,
        *,
        prefix: str = "",
        tags: Iterable[Any] | None = None,
        dependencies: Iterable[Depends] | None = None,
        responses: dict[Any, Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        default_response_class: type[Response] | None = None,
        form_limits: dict[str, int] | None = None,
    ) -> list[Route]:
        """Register a ``RouterGroup``'s routes (as they are now), optionally under another
        prefix, with more tags, dependencies and responses (FastAPI's ``include_router``)."""
        if not isinstance(group, RouterGroup):
            raise TypeError(f"include_routes takes a RouterGroup, got {group!r}")
        check_prefix(prefix)
        extra = include_options(
            tags, dependencies, responses, deprecated, include_in_schema, default_response_class, form_limits
        )
        added = []
        for d in group.route_defs():
            options = merge_options(extra, d.options)
            added.append(self.add_route(join_path(prefix, d.path), d.endpoint, d.methods, d.name, **options))
        return added

    include_router = include_routes

    def url_path_for(self, name: str, /, **path_params: Any) -> str:
        """The path of the route or mount called ``name`` (Starlette's), its
        parameters filled in: ``app.url_path_for("get_user", user_id=3)``,
        ``app.url_path_for("static", path="/app.css")``. NoMatchFound otherwise."""
        for route in self._routes:
            if route.name == name and (path := fill_path(route.path, path_params)) is not None:
                return self.root_path + path
        for mount_path, _, mount_name, endpoint in self._mounts:
            if mount_name == name and endpoint is not None and set(path_params) == {"path"}:
                return f"{self.root_path}{mount_path}/{str(path_params['path']).lstrip('/')}"
        raise NoMatchFound(name, path_params)

    def mount(self, path: str, app: Any, name: str | None = None) -> None:
        """Serve ``app`` under ``path``: a ``StaticFiles`` directory (answered in C),
        another Catzilla app, whose routes, middleware and exception handlers then answer
        under the prefix (its ``root_path`` becomes the prefix, for ``url_path_for`` and its
        docs page; its lifespan hooks do not run, as in Starlette), or any ASGI 3 app (a
        Starlette or FastAPI app, ...), run through catzilla.asgi off the fast path, its
        lifespan run when this app starts and stops serving. A sub-app's routes are
        taken when this app starts serving."""
        from catzilla.staticfiles import StaticFiles

        if path:
            check_path(path)
            if path.endswith("/"):
                raise ValueError(f"a mount path must not end with '/', got {path!r}")
        if isinstance(app, Catzilla):
            if app is self:
                raise ValueError("an app cannot be mounted in itself")
            app.root_path = self.root_path + path
            app.mounted_at = self.mounted_at + path
            self._mounts.append((path, app, name, None))
            return
        if not isinstance(app, StaticFiles):
            if not callable(app):
                raise TypeError(f"app.mount() takes StaticFiles, a Catzilla app or an ASGI app, got {app!r}")
            from catzilla.asgi import METHODS, ASGIMount  # asyncio: only for apps that mount one

            mounted = ASGIMount(app, path)
            options = {"include_in_schema": False}
            for pattern in mounted.patterns():  # not in app.routes nor the OpenAPI document
                self._add(pattern, mounted.endpoint, METHODS, name, [], options, internal=True)
                mounted.endpoints.append(self._endpoints[-1][1])
            self._ws_mounts.append(
                (
                    mounted,
                    websockets.endpoint(
                        mounted.websocket, self._websocket_class, self._report_ws, self._report, self._ws_running
                    ),
                )
            )
            self._lifespan.add("startup", mounted.startup)
            self._lifespan.add("shutdown", mounted.shutdown)
            self._mounts.append((path, mounted, name, mounted.endpoints[-1]))  # its endpoint, for url_path_for
            return
        endpoint = [MODE_STATIC, app._core(self._memory.allocator)]
        self._server.add_route("GET", f"{path}/{{path:path}}", endpoint)
        self._server.add_route("GET", f"{path}/", endpoint)
        self._mounts.append((path, app, name, endpoint))

    def mount_wsgi(self, path: str, app: Callable[..., Any], name: str | None = None) -> None:
        """Serve the WSGI app ``app`` (Flask, Django, ...) under ``path``: the same as
        ``app.mount(path, WSGIMiddleware(app))`` (catzilla.middleware.wsgi), its code
        run on the thread pool."""
        from catzilla.middleware.wsgi import WSGIMiddleware

        self.mount(path, WSGIMiddleware(app), name=name)

    def _served_routes(self, prefix: str) -> Iterator[tuple[list[str], str, list[Any]]]:
        """What this app, mounted under ``prefix``, adds to the app it is mounted in:
        (methods, pattern, endpoint list), wired for this app's middleware and handlers."""
        from catzilla.staticfiles import StaticFiles

        self._prepare()
        own_handlers = bool(self._errors.by_type or self._errors.by_status)
        for route, endpoint, route_layers in self._endpoints:
            if own_handlers and not (self._middleware or route_layers) and not route.websocket:
                # its exceptions go to this app's handlers, not the outer app's
                endpoint[:] = [MODE_REQUEST, self._chain([], route.binding.call, route.binding.is_async)]
            yield sorted(route.methods), prefix + route.path, endpoint
        for path, app, _, mount_endpoint in self._mounts:
            if mount_endpoint is None:
                yield from app._served_routes(prefix + path)
            elif isinstance(app, StaticFiles):  # an ASGI app's routes are among this app's endpoints
                yield ["GET"], f"{prefix}{path}/{{path:path}}", mount_endpoint
                yield ["GET"], f"{prefix}{path}/", mount_endpoint

    # -- middleware, events ---------------------------------------------------------

    def add_middleware(self, middleware: Any, *args: Any, **options: Any) -> None:
        """Add app-wide middleware: a class (built with ``options``), an instance, or a
        ``(request, call_next)`` function. The one added last runs first (outermost).

        An ASGI middleware class (Starlette's convention, ``cls(app, **options)``
        returns an ASGI app: ``starlette.middleware.cors.CORSMiddleware``,
        ``SessionMiddleware``, a pure ASGI class) wraps the whole app instead:
        every route is then answered through the chain, off the C fast path
        (catzilla.asgi_app), outside Catzilla's own middleware. A
        ``starlette.middleware.Middleware(cls, **options)`` entry is taken too."""
        self._add_middleware(middleware, options, outermost=True, args=args)

    def _add_middleware(
        self, middleware: Any, options: dict[str, Any], outermost: bool, args: tuple[Any, ...] = ()
    ) -> None:
        packed = unpack_middleware(middleware)
        if packed is not None:
            if options or args:
                raise TypeError(f"options are given inside {middleware!r} already")
            middleware, args, options = packed
        if is_asgi_middleware(middleware):
            check_asgi_options(middleware, args, options)
            entry = (middleware, args, options)
            if outermost:
                self._asgi_middleware.insert(0, entry)
            else:
                self._asgi_middleware.append(entry)
            self._asgi_stack = None
            self._asgi_prepared = False
            return
        if args:
            raise TypeError(f"positional options are only accepted with an ASGI middleware class, got {middleware!r}")
        if isinstance(middleware, type):
            obj = middleware(**options)
        elif options:
            raise TypeError(f"options are only accepted with a middleware class, got {middleware!r}")
        else:
            obj = middleware
        if outermost:
            self._middleware.insert(0, Layer(obj))
        else:
            self._middleware.append(Layer(obj))

    def middleware(self, middleware_type: str = "http") -> Callable[[F], F]:
        """``@app.middleware("http")`` for a ``(request, call_next)`` function, sync or async."""
        if middleware_type != "http":
            raise ValueError(f"only 'http' middleware is supported, got {middleware_type!r}")

        def decorator(fn: F) -> F:
            self.add_middleware(fn)
            return fn

        return decorator

    def on_event(self, event: str) -> Callable[[F], F]:
        """``@app.on_event("startup")`` / ``("shutdown")``: run once per serving process.

        Deprecated, as in FastAPI (a ``DeprecationWarning``): ``lifespan=`` says the same."""
        warnings.warn("on_event is deprecated, use lifespan event handlers instead", DeprecationWarning, stacklevel=2)

        def decorator(fn: F) -> F:
            self._lifespan.add(event, fn)
            return fn

        return decorator

    def add_event_handler(self, event: str, fn: Callable[[], Any]) -> None:
        self._lifespan.add(event, fn)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document for the routes (built once, rebuilt after routes change)."""
        if self.openapi_schema is None:
            from catzilla.openapi.schema import build_openapi

            self.openapi_schema = build_openapi(self)
        return self.openapi_schema

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def exception_handler(self, exc_class_or_status: int | type[BaseException]) -> Callable[[F], F]:
        """Register ``handler(request, exc)`` for an exception class or a status code (e.g. 404)."""

        def decorator(fn: F) -> F:
            self._errors.add(exc_class_or_status, fn)
            return fn

        return decorator

    # -- serving ---------------------------------------------------------------------

    def listen(
        self,
        port: int = 8000,
        host: str = "127.0.0.1",
        workers: int = 1,
        *,
        uds: str | os.PathLike[str] | None = None,
        fd: int | None = None,
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int | None = None,
        workers_max_rss: float | None = None,
        max_allocated_mb: float | None = None,
        **limits: float,
    ) -> None:
        """Serve until stopped (SIGINT/SIGTERM, or ``stop()`` from another thread).

        ``uds="/run/app.sock"`` serves a Unix domain socket instead of
        host:port (a stale socket file is replaced, the file is removed at the
        end); ``fd=N`` serves the listening socket N inherited from the
        parent process (systemd, circus: TCP or Unix, told apart by the
        socket itself; it stays open). ``workers > 1`` forks that many
        processes sharing the port (or the one socket), under a
        supervisor (SIGHUP restarts them one by one, SIGTTIN/SIGTTOU add or
        remove one). A worker is replaced gracefully once it has read
        ``limit_max_requests`` requests (plus a random 0..``limit_max_requests_jitter``,
        by default a tenth of it), once its RSS reaches ``workers_max_rss`` MiB,
        or once the app's allocator holds ``max_allocated_mb`` MiB (any of
        these runs a supervisor even for one worker). Limits and
        timeouts (see docs/server.md): max_connections, max_connections_per_client, header_timeout,
        body_timeout, keepalive_timeout, write_timeout, shutdown_timeout,
        max_write_buffer, max_write_buffer_total, max_url_length, max_header_size, max_headers,
        max_body_size, backlog, ws_per_message_deflate, ws_max_size, ws_ping_interval, ws_ping_timeout.
        """
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if uds is not None and fd is not None:
            raise ValueError("uds and fd are exclusive: serve one socket")
        if uds is not None and (not isinstance(uds, (str, os.PathLike)) or not os.fspath(uds)):
            raise ValueError(f"uds must be a non-empty path, got {uds!r}")
        config = check_limits(limits)
        recycling = make_recycling(limit_max_requests, limit_max_requests_jitter, workers_max_rss, max_allocated_mb)
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        if fd is not None:
            url = serving.describe_fd(fd)  # ValueError: not a socket this server can serve
        with contextlib.ExitStack() as listening:
            if uds is not None:  # made once: every worker accepts on it
                listener = serving.UnixListener(os.fspath(uds), int(config.get("backlog", 1024)))
                listening.callback(listener.close)
                url, fd = listener.url, listener.fd
            if workers == 1 and not recycling.active:
                self._serve(host, port, config, announce=lambda bound: self._announce(url, bound, 1), fd=fd)
                return
            if port == 0 and fd is None:
                raise ValueError(
                    "workers > 1 and worker recycling need a fixed port (port=0 would give each worker its own)"
                )
            self._announce(url, port, workers)
            shared = fd

            def serve_worker() -> None:
                self._memory.after_fork()
                self.serve_worker(host, port, config, fd=shared if shared is not None else serving.slot_listener())

            shutdown_timeout = config.get("shutdown_timeout", serving.DEFAULT_SHUTDOWN_TIMEOUT_S)
            backlog = int(config.get("backlog", 1024))
            per_slot = None if shared is not None else serving.tcp_listener(host, port, backlog)
            serving.supervise(workers, serve_worker, self.stop, shutdown_timeout, recycling, listener=per_slot)

    def serve_worker(
        self,
        host: str,
        port: int,
        config: dict[str, float],
        announce: Callable[[int], None] | None = None,
        fd: int | None = None,
    ) -> None:
        """Serve as a supervised worker: the listening socket ``fd`` the
        supervisor holds (the worker slot's, or the one Unix/inherited socket),
        else the port bound here (SO_REUSEPORT); the supervisor told once it
        listens (see serving.worker_ready)."""

        def ready(bound: int) -> None:
            if announce is not None:
                announce(bound)
            serving.worker_ready(self._recycling_probe)

        self._serve(host, port, dict(config, reuse_port=1) if fd is None else config, announce=ready, fd=fd)

    def _recycling_probe(self) -> tuple[int, float | None]:
        """Requests read so far, and the MiB the app's allocator holds (recycling limits)."""
        requests = self._server.counters().get("requests", 0)
        try:
            allocated: float | None = self._memory.allocator.stats()["allocated"] / memory.MIB
        except Exception:
            allocated = None
        return requests, allocated

    def stop(self) -> None:
        """Stop a server started (in another thread) with listen(): gracefully."""
        self._stop_requested = True
        self._server.stop()

    def _on_blocking(self, index: int) -> None:
        route = self._route_names.get(index, f"route #{index}")
        logging.getLogger("catzilla").warning(
            "%s: its sync handler blocked the event loop; it runs on the thread pool from now on "
            "(threadpool=True on the route starts it there)",
            route,
        )

    def _announce(self, url: str, port: int, workers: int) -> None:
        if url.startswith("http://") and port:
            url = url.rsplit(":", 1)[0] + f":{port}"
        print(
            serving.banner(
                url, workers, self._memory.backend, self.production, _core.build_info()["version"], self.debug
            ),
            file=sys.stderr,
            flush=True,
        )

    def _serve(
        self,
        host: str,
        port: int,
        config: dict[str, float],
        announce: Callable[[int], None] | None = None,
        fd: int | None = None,
    ) -> None:
        if self.max_body_size is not None and "max_body_size" not in config:
            config = dict(config, max_body_size=float(self.max_body_size))  # listen()'s wins
        config = {
            "ws_per_message_deflate": float(self.ws_per_message_deflate),
            "ws_max_size": float(self.ws_max_size),
            "ws_ping_interval": self.ws_ping_interval,
            "ws_ping_timeout": self.ws_ping_timeout or self.ws_ping_interval,
            **config,
        }
        run_sync = self._runner.run_sync
        lifespan = self._lifespan_through_middleware() if self._asgi_middleware else None
        try:
            if lifespan is not None:
                lifespan.startup()
            else:
                self._lifespan.startup(self, run_sync)
        except BaseException:
            self._runner.close()
            raise
        try:
            self._prepare()
            self._server.set_hooks(
                json_encode=json_dumps,
                response_type=Response,
                render=render.render_value,
                error=self._on_error,
                not_found=self._not_found_hook(),
                submit=self._runner.submit,
                cancel_all=self._runner.cancel_all,
                cancel=self._runner.cancel,
                spawn=self._runner.spawn,
                streaming_type=StreamingResponse,
                file_type=FileResponse,
                log_error=log_error,
                blocking=self._on_blocking,
                pump=self._runner.pump,
                resolve=self._runner.resolve,
                resolve_all=self._runner.resolve_all,
                submit_all=self._runner.submit_all,
            )
            threadpool.configure(self.threadpool_size)
            self._configure_accounting()
            with serving.signals_to() as main_thread:
                config = dict(config, handle_signals=int(main_thread))
                if fd is not None:
                    self.port = self._server.bind_fd(fd, config)
                else:
                    self.port = self._server.bind(host, port, config)
                if announce is not None:
                    announce(self.port)
                if self._stop_requested:
                    self._server.stop()
                try:
                    self._runner.serve(self._server)
                finally:
                    self.port = None
                    self._stop_requested = False
        finally:
            try:
                if lifespan is not None:
                    lifespan.shutdown()
                else:
                    self._lifespan.shutdown(self, run_sync)
            finally:
                self._runner.close()

    def _not_found_hook(self) -> Callable[..., Any] | None:
        """What the C core calls for a path no route matches: the ASGI middleware chain
        (whose innermost app answers the 404), the app's 404 handler, or nothing (the C
        core's own 404)."""
        if self._asgi_middleware and self._asgi_through is not None:
            return self._asgi_through.http  # type: ignore[no-any-return]
        return self._on_not_found if 404 in self._errors.by_status else None

    def _lifespan_through_middleware(self) -> Any:
        """The app's startup and shutdown as a ``lifespan`` scope through its ASGI
        middleware (Starlette's middleware sees it), on the app's asyncio loop."""
        from catzilla.asgi_app import LifespanThrough

        return LifespanThrough(self, self._asgi_app())

    def _install_observability(self) -> None:
        """The /metrics route and the memory page, once (internal routes: not in app.routes nor the schema)."""
        if self._observability_installed:
            return
        self._observability_installed = True
        options = {"include_in_schema": False}
        if self.metrics:
            from catzilla import metrics

            self._add(self.metrics_path, metrics.endpoint(self), ["GET"], "metrics", [], options, internal=True)
        if self.memory_dashboard is not None:
            from catzilla import dashboard

            dashboard.install(self, self.memory_dashboard)

    def _configure_accounting(self) -> None:
        """Logging as asked, and the C core's metrics and access log for this run."""
        if self.log_config is not None or self.log_level is not None:
            logs.configure_logging(self.log_level, self.log_config, access_log=self.access_log)
        mode = -1
        formatter = None
        if self.access_log:
            logs.ensure_access_handler()
            if callable(self.access_log_format):
                mode, formatter = 1, self.access_log_format
            else:
                mode = logs.ACCESS_FORMATS.index(self.access_log_format)
        self._server.set_accounting(
            metrics=self.metrics,
            access_log=mode,
            sink=logs.AccessSink(formatter),
            route_memory=self.route_memory_enabled,
        )

    @property
    def route_memory_enabled(self) -> bool:
        """Whether per-route memory is kept: ``route_memory``, else ``metrics``."""
        return self.metrics if self.route_memory is None else self.route_memory

    def get_metrics(self) -> str:
        """What ``/metrics`` answers now (Prometheus text format), also without ``metrics=True``
        (then without request counts)."""
        from catzilla import metrics

        return metrics.render(self)

    def _prepare(self) -> None:
        """Wire each route's endpoint list for this run: the bare endpoint, or its middleware chain."""
        self._install_observability()
        if not self._docs_installed and self.openapi_url:
            self._docs_installed = True
            taken = {r.path for r in self._routes}
            urls = {self.openapi_url, self.docs_url, self.redoc_url} - {None}
            if not urls & taken:
                from catzilla.openapi import install

                install(self, self.openapi_url, self.docs_url, self.redoc_url)
        app_layers = self._middleware
        for route, endpoint, route_layers in self._endpoints:
            layers = app_layers + route_layers
            self._asgi_async[id(endpoint)] = route.binding.is_async or any(layer.is_async for layer in layers)
            if route.websocket:  # middleware sees the handshake; what it answers refuses it (e.g. 401)
                run = route.binding.websocket_run
                endpoint[:] = [MODE_WS, run if not layers else self._websocket_chain(layers, run)]
                continue
            binding = route.binding
            if not layers:
                endpoint[:] = binding.endpoint()
            else:
                endpoint[:] = [MODE_REQUEST, self._chain(layers, binding.call, binding.is_async)]
        for mounted, run in self._ws_mounts:  # its HTTP routes take its WebSocket handshakes too
            ws_endpoint = [MODE_WS, run if not app_layers else self._websocket_chain(app_layers, run)]
            for endpoint in mounted.endpoints:
                endpoint.append(ws_endpoint)
        served: list[list[Any]] = []  # the endpoint lists of mounted Catzilla apps' routes
        for prefix, sub, _, mount_endpoint in self._mounts:
            if mount_endpoint is not None:
                continue
            for methods, pattern, endpoint in sub._served_routes(prefix):
                served.append(endpoint)
                for method in methods:
                    if (method, pattern) not in self._mounted_patterns:
                        self._server.add_route(method, pattern, endpoint)
                        self._mounted_patterns.add((method, pattern))
        # CORS preflights must reach app middleware: OPTIONS on every path that has no OPTIONS route.
        allowed: dict[str, set[str]] = {}
        for route, _, _ in self._endpoints:
            allowed.setdefault(route.path, set()).update(route.methods)
        for path, methods in allowed.items():
            if "OPTIONS" in methods or (not (app_layers or self._asgi_middleware) and path not in self._auto_options):
                continue
            allow = ", ".join(sorted(methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())))

            def auto_options(raw: Any, request: Any = None, allow: str = allow) -> Response:
                return Response(None, status_code=204, headers={"Allow": allow})

            fn: Callable[..., Any] = self._chain(app_layers, auto_options, False) if app_layers else auto_options
            options_endpoint = self._auto_options.get(path)
            if options_endpoint is None:
                options_endpoint = [MODE_REQUEST, fn]
                self._server.add_route("OPTIONS", path, options_endpoint)
                self._auto_options[path] = options_endpoint
            else:
                options_endpoint[:] = [MODE_REQUEST, fn]
        self._asgi_route_stacks.clear()
        for route, endpoint, _ in self._endpoints:
            route_mw = self._asgi_route_mw.get(id(endpoint))
            if route_mw:
                self._route_through_asgi_middleware(route, endpoint, route_mw)
        for prefix, sub, _, mount_endpoint in self._mounts:
            if mount_endpoint is None:
                self._asgi_route_stacks.update(sub._asgi_route_stacks)
                if sub._asgi_middleware:  # over ASGI its routes go through its own chain, under the prefix
                    from catzilla.asgi_app import MountedApp

                    under_prefix = MountedApp(sub._asgi_app(), prefix)
                    for key in sub._asgi_inner:
                        self._asgi_route_stacks[key] = under_prefix
                self._asgi_async.update(sub._asgi_async)
                self._asgi_policy.update(sub._asgi_policy)
                self._asgi_names.update(sub._asgi_names)
        self._asgi_inner.clear()
        if self._asgi_middleware:
            self._through_asgi_middleware(
                [t for _, t, _ in self._endpoints] + served + list(self._auto_options.values())
            )

    def _route_through_asgi_middleware(
        self, route: Route, endpoint: list[Any], middleware: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]
    ) -> None:
        """Answer one route through its own ASGI middleware: its endpoint list becomes
        the chain's entry; the chain's innermost app calls the route's own endpoint."""
        from catzilla.asgi_app import RouteApp, ThroughMiddleware, build_stack

        key = id(endpoint)
        inner = RouteApp(
            self._dispatcher(),
            list(endpoint),
            self._asgi_async.get(key),
            key,
            route.binding.body_mode,
            self._asgi_limits.get(key, 0),
        )
        stack = self._asgi_route_stacks[key] = build_stack(inner, middleware)
        through = ThroughMiddleware(self, stack)
        endpoint[:] = [MODE_WS, through.websocket] if endpoint[0] == MODE_WS else [MODE_REQUEST, through.http]

    def _through_asgi_middleware(self, endpoints: list[list[Any]]) -> None:
        """Answer every route through the ASGI middleware chain: each endpoint list
        becomes the chain's entry, the route's own is kept for the chain's innermost
        app (catzilla.asgi_app.Dispatcher). Static directories stay in C."""
        from catzilla.asgi_app import ThroughMiddleware

        through = self._asgi_through = ThroughMiddleware(self, self._asgi_app())
        for endpoint in endpoints:
            mode = endpoint[0]
            if mode == MODE_STATIC or id(endpoint) in self._asgi_inner:
                continue
            self._asgi_inner[id(endpoint)] = (endpoint, list(endpoint), self._asgi_async.get(id(endpoint)))
            if mode == MODE_WS:
                endpoint[:] = [MODE_WS, through.websocket]
            elif len(endpoint) == 3 and isinstance(endpoint[2], list):  # a mounted ASGI app: its upgrades too
                endpoint[:] = [MODE_REQUEST, through.http, [MODE_WS, through.websocket]]
            else:
                endpoint[:] = [MODE_REQUEST, through.http]

    # -- the app as an ASGI application ----------------------------------------------------

    def _asgi_app(self) -> Callable[..., Any]:
        """The ASGI app this app is: its ASGI middleware around its dispatcher (built
        once, again after ``add_middleware``)."""
        from catzilla.asgi_app import build_stack

        if self._asgi_stack is None:
            self._asgi_stack = build_stack(self._dispatcher(), self._asgi_middleware)
        return self._asgi_stack  # type: ignore[no-any-return]

    def _dispatcher(self) -> Any:
        """The app's ASGI dispatcher (catzilla.asgi_app.Dispatcher), made once."""
        from catzilla.asgi_app import Dispatcher

        if self._asgi_dispatcher is None:
            self._asgi_dispatcher = Dispatcher(self)
        return self._asgi_dispatcher

    def _asgi_route(self, endpoint: list[Any]) -> tuple[list[Any], bool | None, int]:
        """A matched endpoint list as the ASGI dispatcher calls it: the route's own
        (under the ASGI middleware's entry), whether it is async (None: unknown), and
        the key of its policy (``_asgi_policy``)."""
        key = id(endpoint)
        entry = self._asgi_inner.get(key)
        if entry is not None:
            return entry[1], entry[2], key
        return endpoint, self._asgi_async.get(key), key

    def _asgi_blocked(self, key: int, seconds: float) -> None:
        """A sync handler held the event loop too long over ASGI: the thread pool from
        now on, once seen twice in a row (a first call also imports and warms caches)."""
        if self._asgi_slow.get(key, 0) < 1:
            self._asgi_slow[key] = 1
            return
        self._asgi_policy[key] = threadpool.POLICY_POOL
        logging.getLogger("catzilla").warning(
            "%s: its sync handler held the event loop for %.0f ms; it runs on the thread pool from now on "
            "(threadpool=True on the route starts it there)",
            self._asgi_names.get(key, "a route"),
            seconds * 1000,
        )

    async def __call__(self, scope: Any, receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        """The app as an ASGI 3 application: ``uvicorn module:app``, ``httpx.ASGITransport(app)``.
        HTTP, WebSocket and lifespan scopes go through the ASGI middleware, then to the
        routes, found by the same router as on Catzilla's own server (catzilla.asgi_app)."""
        if not self._asgi_prepared:
            self._prepare()  # routes wired as for a run of our server (once; again after changes)
            self._asgi_prepared = True
        await self._asgi_app()(scope, receive, send)

    def _websocket_chain(self, layers: list[Layer], run: Callable[..., Any]) -> Callable[[Any], Any]:
        return build_chain(
            layers,
            run,
            True,
            render.to_response,
            self._on_error,
            self._on_error_async,
            self._websocket_class,  # type: ignore[arg-type]
        )

    def _chain(self, layers: list[Layer], call: Callable[[Any, Any], Any], is_async: bool) -> Callable[[Any], Any]:
        return build_chain(
            layers, call, is_async, render.to_response, self._on_error, self._on_error_async, self._request_class
        )

    # -- hooks called by the C core --------------------------------------------------

    def _render(self, value: Any) -> Response:
        """A return value the C core does not turn into a response itself."""
        return render.render_value(value)

    def _on_error(self, raw: _core.RawRequest | None, exc: BaseException) -> Response:
        handler = self._errors.find(exc)
        if handler is not None:
            try:
                result = handler(self._request_class(raw) if raw is not None else None, exc)  # type: ignore[arg-type]
                if inspect.iscoroutine(result):
                    result = self._runner.run_sync(result)
                return render.to_response(result)
            except Exception as error:  # the handler itself failed
                exc = error
        return self._default_response(exc)

    async def _on_error_async(self, raw: _core.RawRequest | None, exc: BaseException) -> Response:
        """As _on_error, on the asyncio loop (middleware chains)."""
        handler = self._errors.find(exc)
        if handler is not None:
            try:
                result = handler(self._request_class(raw) if raw is not None else None, exc)  # type: ignore[arg-type]
                if inspect.iscoroutine(result):
                    result = await result
                return render.to_response(result)
            except Exception as error:
                exc = error
        return self._default_response(exc)

    def _default_response(self, exc: BaseException) -> Response:
        self._report(exc)
        show = self.debug and not self.production
        try:
            return self._errors.default(exc, show)
        except Exception as error:  # e.g. an HTTPException whose detail is not JSON
            if error.__context__ is None:
                error.__context__ = exc  # the log shows both, as if raised while handling it
            log.error("Exception while answering an exception", exc_info=(type(error), error, error.__traceback__))
            return server_error_response(exc, show)

    def _report_ws(self, exc: BaseException) -> None:
        """A WebSocket handler raised after accepting: logged, closed with 1011."""
        logging.getLogger("catzilla.error").error("Exception in WebSocket handler", exc_info=exc)
        self._report(exc)

    def _report(self, exc: BaseException) -> None:
        sink = self._exception_sink
        if (
            sink is not None
            and not isinstance(exc, (HTTPException, RequestValidationError))
            and not is_cancellation(exc)
        ):
            sink(exc)

    def _on_not_found(self, raw: _core.RawRequest) -> Any:
        raise HTTPException(404, "Not Found")
