"""The Catzilla application object."""

from __future__ import annotations

import inspect
import logging
import math
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import catzilla
from catzilla import _core, logs, memory, rendering, serving, threadpool, websockets
from catzilla.background import BackgroundTasks
from catzilla.binding import Binding
from catzilla.datastructures import State
from catzilla.dependencies import Depends
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
from catzilla.middleware.base import Layer, build_chain
from catzilla.params import MODE_REQUEST, MODE_STATIC, MODE_WS, Undefined
from catzilla.proxy import TrustedHosts
from catzilla.request import Request
from catzilla.response import FileResponse, Response, StreamingResponse, json_dumps
from catzilla.routing import (
    NoMatchFound,
    Route,
    RouteDecorators,
    RouterGroup,
    check_options,
    check_path,
    check_prefix,
    fill_path,
    include_options,
    join_path,
    merge_options,
    normalize_methods,
)
from catzilla.runner import AsyncRunner

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


def log_error(message: str, exc: BaseException) -> None:
    """A failure no client can be told of (e.g. a stream cut after its head was sent)."""
    logging.getLogger("catzilla.error").error(message, exc_info=exc)


def background_runner(runner: AsyncRunner) -> Callable[[BackgroundTasks], None]:
    def run(tasks: BackgroundTasks) -> None:
        runner.spawn(tasks.run())

    return run


class Catzilla(RouteDecorators):
    """A Catzilla application.

    The memory allocator is chosen here, once: ``use_jemalloc=True`` uses
    jemalloc when this build has it and it starts, and falls back to malloc
    with a message on stderr otherwise. It cannot be switched afterwards.

    ``title``, ``version``, ``description``, ``openapi_tags`` and ``servers``
    (and ``summary``, ``terms_of_service``, ``contact``, ``license_info``) describe
    the API in ``/openapi.json``; ``docs_url=None`` turns off ``/docs``,
    ``redoc_url=None`` the ``/redoc`` page, ``openapi_url=None`` all three.
    ``default_response_class`` is the response class of routes that name none.
    ``strict_content_type=True`` refuses a JSON body sent without Content-Type
    (FastAPI's default; Catzilla's is False, which keeps such routes on the C
    core's direct path).
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
    """

    def __init__(
        self,
        *,
        use_jemalloc: bool = True,
        memory_profiling: bool = False,
        auto_memory_tuning: bool = True,
        memory_stats_interval: float = 60,
        production: bool = False,
        debug: bool = False,
        threadpool_size: int = threadpool.DEFAULT_SIZE,
        max_body_size: int | None = None,
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
        strict_content_type: bool = False,
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
    ) -> None:
        self.access_log = memory.check_bool("access_log", access_log) if access_log is not None else False
        if not (callable(access_log_format) or access_log_format in logs.ACCESS_FORMATS):
            raise ValueError(f"access_log_format must be 'common', 'json' or a callable, got {access_log_format!r}")
        self.access_log_format = access_log_format
        logs.check_level(log_level)
        self.log_level = log_level
        self.log_config = log_config
        self.metrics = memory.check_bool("metrics", metrics)
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
        self.max_body_size = None if max_body_size is None else check_body_size(max_body_size, "Catzilla()")
        # WebSockets (uvicorn's names): permessage-deflate for clients that offer it; a message's bound (1009).
        self.ws_per_message_deflate = memory.check_bool("ws_per_message_deflate", ws_per_message_deflate)
        self.ws_max_size = check_body_size(ws_max_size, "Catzilla(ws_max_size=...)")
        # Keep-alive: a ping after ws_ping_interval s without one; no pong within ws_ping_timeout s closes 1011.
        self.ws_ping_interval = check_seconds(ws_ping_interval, "ws_ping_interval")
        self.ws_ping_timeout = check_seconds(ws_ping_timeout, "ws_ping_timeout")
        self._memory = AppMemory(
            use_jemalloc=memory.jemalloc_from_env(memory.check_bool("use_jemalloc", use_jemalloc)),
            memory_profiling=memory.check_bool("memory_profiling", memory_profiling),
            auto_memory_tuning=memory.check_bool("auto_memory_tuning", auto_memory_tuning),
            memory_stats_interval=memory.check_interval(memory_stats_interval),
        )
        self._server = _core.Server(self._memory.allocator)
        self._route_names: dict[int, str] = {}  # C route index -> "GET /path", for log lines
        self._registered: set[tuple[str, str]] = set()  # (method, path) served
        self._routes: list[Route] = []
        self._targets: list[tuple[Route, list[Any], list[Layer]]] = []  # [mode, callable] per route
        self._mounts: list[tuple[str, Any, str | None, list[Any] | None]] = []  # (path, app, name, endpoint)
        self._mounted_patterns: set[tuple[str, str]] = set()  # sub-app routes added to this server
        self.root_path = root_path
        self.root_path_given = bool(root_path)  # the app's own, not a mount's nor a proxy's
        self.root_path_in_servers = root_path_in_servers
        # Proxy headers (X-Forwarded-*, Forwarded): off unless turned on; then believed
        # only from forwarded_allow_ips (see catzilla.proxy). `catzilla run` turns them on.
        self._proxy_headers = False
        self._forwarded_allow_ips = TrustedHosts("127.0.0.1")
        self._proxy_trusted: TrustedHosts | None = None
        self._auto_options: dict[str, list[Any]] = {}
        self._errors = ErrorHandlers()
        self._runner = AsyncRunner()
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
        self.dependencies = list(dependencies or [])
        # one dict for the app's life: routes hold it (assigning a new one refills it)
        self._dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._middleware: list[Layer] = [Layer(m) for m in (middleware or [])]  # outermost first
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
        """The allocators this build can use: ``["malloc"]`` or ``["malloc", "jemalloc"]``."""
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
            "status": "initialized",
            "fallback_reason": m.fallback_reason,
        }

    def get_memory_stats(self) -> dict[str, Any]:
        return self._memory.stats()

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
        endpoint: Callable[..., Any],
        methods: Iterable[str],
        name: str | None,
        dependencies: list[Depends],
        options: dict[str, Any],
        internal: bool = False,
    ) -> Route:
        """Register a route; ``internal`` ones (the docs) are not listed in ``app.routes``."""
        method_list = normalize_methods(methods)
        check_path(path)
        if not callable(endpoint):
            raise TypeError(f"route handler must be callable, got {endpoint!r}")
        status_code = options.get("status_code")
        if status_code is not None and (
            isinstance(status_code, bool) or not isinstance(status_code, int) or not 100 <= status_code <= 999
        ):
            raise ValueError(f"status_code must be an int in 100..999, got {status_code!r}")
        is_ws = bool(options.get("websocket"))
        if is_ws and not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"WebSocket route {path!r}: the handler must be an async function")
        response_class = options.get("response_class") or self.default_response_class
        responses = {**self.responses, **(options.get("responses") or {})}
        binding = Binding(
            path,
            endpoint,
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
        )
        route_mw = list(options.get("middleware") or [])
        layers = [Layer(m) for m in route_mw]
        route = Route(
            path,
            frozenset(method_list),
            name or str(getattr(endpoint, "__name__", None) or repr(endpoint)),
            endpoint,
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
        target = binding.target()
        if is_ws:
            run = websockets.endpoint(
                binding.call, self._websocket_class, self._report_ws, self._report, self._ws_running
            )
            binding.websocket_run = run  # the innermost call of a middleware chain (_prepare)
            target = [MODE_WS, run]
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
                fresh, path, target, policy, max_body, binding.body_mode
            )  # every method or none
            for method, index in zip(fresh, indexes if isinstance(indexes, list) else [indexes], strict=True):
                self._route_names[index] = f"{method} {path}"
                self._registered.add((method, path))
        if not internal:
            self._routes.append(route)
        self._targets.append((route, target, layers))
        self.openapi_schema = None
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
    ) -> list[Route]:
        """Register a ``RouterGroup``'s routes (as they are now), optionally under another
        prefix, with more tags, dependencies and responses (FastAPI's ``include_router``)."""
        if not isinstance(group, RouterGroup):
            raise TypeError(f"include_routes takes a RouterGroup, got {group!r}")
        check_prefix(prefix)
        extra = include_options(tags, dependencies, responses, deprecated, include_in_schema, default_response_class)
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
        """Serve ``app`` under ``path``: a ``StaticFiles`` directory (answered in C), or
        another Catzilla app, whose routes, middleware and exception handlers then answer
        under the prefix (its ``root_path`` becomes the prefix, for ``url_path_for`` and its
        docs page; its lifespan hooks do not run, as in Starlette). A sub-app's routes are
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
            self._mounts.append((path, app, name, None))
            return
        if not isinstance(app, StaticFiles):
            raise NotImplementedError(
                f"app.mount() takes StaticFiles or a Catzilla app; mounting {type(app).__name__} is not supported yet"
            )
        endpoint = [MODE_STATIC, app._core(self._memory.allocator)]
        self._server.add_route("GET", f"{path}/{{path:path}}", endpoint)
        self._server.add_route("GET", f"{path}/", endpoint)
        self._mounts.append((path, app, name, endpoint))

    def _served_routes(self, prefix: str) -> Iterator[tuple[list[str], str, list[Any]]]:
        """What this app, mounted under ``prefix``, adds to the app it is mounted in:
        (methods, pattern, endpoint list), wired for this app's middleware and handlers."""
        self._prepare()
        own_handlers = bool(self._errors.by_type or self._errors.by_status)
        for route, target, route_layers in self._targets:
            if own_handlers and not (self._middleware or route_layers) and not route.websocket:
                # its exceptions go to this app's handlers, not the outer app's
                target[:] = [MODE_REQUEST, self._chain([], route.binding.call, route.binding.is_async)]
            yield sorted(route.methods), prefix + route.path, target
        for path, app, _, endpoint in self._mounts:
            if endpoint is None:
                yield from app._served_routes(prefix + path)
            else:
                yield ["GET"], f"{prefix}{path}/{{path:path}}", endpoint
                yield ["GET"], f"{prefix}{path}/", endpoint

    # -- middleware, events ---------------------------------------------------------

    def add_middleware(self, middleware: Any, **options: Any) -> None:
        """Add app-wide middleware: a class (built with ``options``), an instance, or a
        ``(request, call_next)`` function. The one added last runs first (outermost)."""
        if isinstance(middleware, type):
            obj = middleware(**options)
        elif options:
            raise TypeError("options are only accepted with a middleware class")
        else:
            obj = middleware
        self._middleware.insert(0, Layer(obj))

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
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int | None = None,
        workers_max_rss: float | None = None,
        max_allocated_mb: float | None = None,
        **limits: float,
    ) -> None:
        """Serve until stopped (SIGINT/SIGTERM, or ``stop()`` from another thread).

        ``workers > 1`` forks that many processes sharing the port, under a
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
        config = check_limits(limits)
        recycling = make_recycling(limit_max_requests, limit_max_requests_jitter, workers_max_rss, max_allocated_mb)
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        if workers == 1 and not recycling.active:
            self._serve(host, port, config, announce=lambda bound: self._announce(url, bound, 1))
            return
        if port == 0:
            raise ValueError(
                "workers > 1 and worker recycling need a fixed port (port=0 would give each worker its own)"
            )
        self._announce(url, port, workers)

        def serve_worker() -> None:
            self._memory.after_fork()
            self.serve_worker(host, port, config)

        shutdown_timeout = config.get("shutdown_timeout", serving.DEFAULT_SHUTDOWN_TIMEOUT_S)
        serving.supervise(workers, serve_worker, self.stop, shutdown_timeout, recycling)

    def serve_worker(
        self, host: str, port: int, config: dict[str, float], announce: Callable[[int], None] | None = None
    ) -> None:
        """Serve as a supervised worker: the port shared (SO_REUSEPORT), the
        supervisor told once it listens (see serving.worker_ready)."""

        def ready(bound: int) -> None:
            if announce is not None:
                announce(bound)
            serving.worker_ready(self._recycling_probe)

        self._serve(host, port, dict(config, reuse_port=1), announce=ready)

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
        url = url.rsplit(":", 1)[0] + f":{port}"
        print(
            serving.banner(url, workers, self._memory.backend, self.production, catzilla.__version__, self.debug),
            file=sys.stderr,
            flush=True,
        )

    def _serve(
        self, host: str, port: int, config: dict[str, float], announce: Callable[[int], None] | None = None
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
        try:
            self._lifespan.startup(self, run_sync)
        except BaseException:
            self._runner.close()
            raise
        try:
            self._prepare()
            self._server.set_hooks(
                json_encode=json_dumps,
                response_type=Response,
                render=rendering.render_value,
                error=self._on_error,
                not_found=self._on_not_found if 404 in self._errors.by_status else None,
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
            )
            threadpool.configure(self.threadpool_size)
            self._configure_accounting()
            with serving.signals_to() as main_thread:
                self.port = self._server.bind(host, port, dict(config, handle_signals=int(main_thread)))
                if announce is not None:
                    announce(self.port)
                if self._stop_requested:
                    self._server.stop()
                try:
                    self._server.run()
                finally:
                    self.port = None
                    self._stop_requested = False
        finally:
            try:
                self._lifespan.shutdown(self, run_sync)
            finally:
                self._runner.close()

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
        self._server.set_accounting(metrics=self.metrics, access_log=mode, sink=logs.AccessSink(formatter))

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
        for route, target, route_layers in self._targets:
            layers = app_layers + route_layers
            if route.websocket:  # middleware sees the handshake; what it answers refuses it (e.g. 401)
                run = route.binding.websocket_run
                target[:] = [MODE_WS, run if not layers else self._websocket_chain(layers, run)]
                continue
            binding = route.binding
            if not layers:
                target[:] = binding.target()
            else:
                target[:] = [MODE_REQUEST, self._chain(layers, binding.call, binding.is_async)]
        for prefix, sub, _, endpoint in self._mounts:
            if endpoint is not None:
                continue
            for methods, pattern, target in sub._served_routes(prefix):
                for method in methods:
                    if (method, pattern) not in self._mounted_patterns:
                        self._server.add_route(method, pattern, target)
                        self._mounted_patterns.add((method, pattern))
        # CORS preflights must reach app middleware: OPTIONS on every path that has no OPTIONS route.
        allowed: dict[str, set[str]] = {}
        for route, _, _ in self._targets:
            allowed.setdefault(route.path, set()).update(route.methods)
        for path, methods in allowed.items():
            if "OPTIONS" in methods or (not app_layers and path not in self._auto_options):
                continue
            allow = ", ".join(sorted(methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())))

            def auto_options(raw: Any, request: Any = None, allow: str = allow) -> Response:
                return Response(None, status_code=204, headers={"Allow": allow})

            fn: Callable[..., Any] = self._chain(app_layers, auto_options, False) if app_layers else auto_options
            options_target = self._auto_options.get(path)
            if options_target is None:
                options_target = [MODE_REQUEST, fn]
                self._server.add_route("OPTIONS", path, options_target)
                self._auto_options[path] = options_target
            else:
                options_target[:] = [MODE_REQUEST, fn]

    def _websocket_chain(self, layers: list[Layer], run: Callable[..., Any]) -> Callable[[Any], Any]:
        return build_chain(
            layers,
            run,
            True,
            rendering.to_response,
            self._on_error,
            self._on_error_async,
            self._websocket_class,  # type: ignore[arg-type]
        )

    def _chain(self, layers: list[Layer], call: Callable[[Any, Any], Any], is_async: bool) -> Callable[[Any], Any]:
        return build_chain(
            layers, call, is_async, rendering.to_response, self._on_error, self._on_error_async, self._request_class
        )

    # -- hooks called by the C core --------------------------------------------------

    def _render(self, value: Any) -> Response:
        """A return value the C core does not turn into a response itself."""
        return rendering.render_value(value)

    def _on_error(self, raw: _core.RawRequest | None, exc: BaseException) -> Response:
        handler = self._errors.find(exc)
        if handler is not None:
            try:
                result = handler(self._request_class(raw) if raw is not None else None, exc)  # type: ignore[arg-type]
                if inspect.iscoroutine(result):
                    result = self._runner.run_sync(result)
                return rendering.to_response(result)
            except Exception as error:  # the handler itself failed
                exc = error
        return self._default_response(exc)

    async def _on_error_async(self, raw: _core.RawRequest | None, exc: BaseException) -> Response:
        """As _on_error, on the asyncio thread (middleware chains)."""
        handler = self._errors.find(exc)
        if handler is not None:
            try:
                result = handler(self._request_class(raw) if raw is not None else None, exc)  # type: ignore[arg-type]
                if inspect.iscoroutine(result):
                    result = await result
                return rendering.to_response(result)
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
