"""The Catzilla application object."""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import catzilla
from catzilla import _core, memory, serving
from catzilla.exceptions import ErrorHandlers, HTTPException
from catzilla.memory import AppMemory
from catzilla.request import Request
from catzilla.response import JSONResponse, Response, json_dumps
from catzilla.routing import Route, RouteDecorators, make_route, normalize_methods
from catzilla.runner import AsyncRunner

F = TypeVar("F", bound=Callable[..., Any])

# Server settings accepted by listen(); defaults live in the C core
# (csrc/server/cz_server.h, csrc/http/cz_http.h) and in docs/server.md.
LIMITS = (
    "max_connections", "header_timeout", "body_timeout", "keepalive_timeout", "write_timeout",
    "shutdown_timeout", "max_write_buffer", "max_url_length", "max_header_size", "max_headers",
    "max_body_size", "backlog",
)


class Catzilla(RouteDecorators):
    """A Catzilla application.

    The memory allocator is chosen here, once: ``use_jemalloc=True`` uses
    jemalloc when this build has it and it starts, and falls back to malloc
    with a message on stderr otherwise. It cannot be switched afterwards.
    """

    def __init__(
        self,
        *,
        use_jemalloc: bool = True,
        memory_profiling: bool = False,
        auto_memory_tuning: bool = True,
        memory_stats_interval: float = 60,
        production: bool = False,
    ) -> None:
        self.production = memory.check_bool("production", production)
        self._memory = AppMemory(
            use_jemalloc=memory.check_bool("use_jemalloc", use_jemalloc),
            memory_profiling=memory.check_bool("memory_profiling", memory_profiling),
            auto_memory_tuning=memory.check_bool("auto_memory_tuning", auto_memory_tuning),
            memory_stats_interval=memory.check_interval(memory_stats_interval),
        )
        self._server = _core.Server(self._memory.allocator)
        self._routes: list[Route] = []
        self._errors = ErrorHandlers()
        self._runner = AsyncRunner()
        self._stop_requested = False
        self.port: int | None = None  # the bound port while serving

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

    def close(self) -> None:
        """Stop the app's background threads (memory monitor, asyncio loop). Idempotent."""
        self._memory.close()
        self._runner.close()

    # -- routes ------------------------------------------------------------------------

    def add_route(
        self, path: str, endpoint: Callable[..., Any], methods: Iterable[str] = ("GET",), name: str | None = None
    ) -> Route:
        """Register ``endpoint`` for ``path``; ValueError on a bad, duplicate or conflicting route."""
        method_list = normalize_methods(methods)
        route, binding = make_route(path, endpoint, method_list, name)
        # [mode, callable], shared by the route's methods; the C core reads it per request.
        target = [binding.mode, binding.endpoint()]
        for method in method_list:
            self._server.add_route(method, path, target)
        self._routes.append(route)
        return route

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

    def listen(self, port: int = 8000, host: str = "127.0.0.1", workers: int = 1, **limits: float) -> None:
        """Serve until stopped (SIGINT/SIGTERM, or ``stop()`` from another thread).

        ``workers > 1`` forks that many processes sharing the port. Limits and
        timeouts (see docs/server.md): max_connections, header_timeout,
        body_timeout, keepalive_timeout, write_timeout, shutdown_timeout,
        max_write_buffer, max_url_length, max_header_size, max_headers,
        max_body_size, backlog.
        """
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        config: dict[str, float] = {}
        for key, value in limits.items():
            if key not in LIMITS:
                raise TypeError(f"listen() got an unknown setting {key!r}; known: {', '.join(LIMITS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{key} must be a number > 0, got {value!r}")
            config[key] = float(value)
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        if workers == 1:
            self._serve(host, port, config, announce=lambda bound: self._announce(url, bound, 1))
            return
        if port == 0:
            raise ValueError("workers > 1 need a fixed port (port=0 would give each worker its own)")
        self._announce(url, port, workers)
        config["reuse_port"] = 1

        def serve_worker() -> None:
            self._memory.after_fork()
            self._serve(host, port, config)

        serving.supervise(workers, serve_worker)

    def stop(self) -> None:
        """Stop a server started (in another thread) with listen(): gracefully."""
        self._stop_requested = True
        self._server.stop()

    def _announce(self, url: str, port: int, workers: int) -> None:
        url = url.rsplit(":", 1)[0] + f":{port}"
        print(serving.banner(url, workers, self._memory.backend, self.production, catzilla.__version__),
              file=sys.stderr, flush=True)

    def _serve(self, host: str, port: int, config: dict[str, float], announce: Callable[[int], None] | None = None) -> None:
        self._server.set_hooks(
            json_encode=json_dumps,
            response_type=Response,
            render=self._render,
            error=self._on_error,
            not_found=self._on_not_found if 404 in self._errors.by_status else None,
            submit=self._runner.submit,
            cancel_all=self._runner.cancel_all,
        )
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
                self._runner.close()

    # -- hooks called by the C core --------------------------------------------------

    def _render(self, value: Any) -> Response:
        """A return value the C core does not turn into a response itself."""
        if isinstance(value, (dict, list, tuple, int, float)):  # bool is an int
            return JSONResponse(value)
        raise TypeError(
            f"handler returned an unsupported type {type(value).__name__!r}; "
            "return dict, list, str, bytes, None or a Response"
        )

    def _on_error(self, raw: _core.RawRequest | None, exc: BaseException) -> Response:
        handler = self._errors.find(exc)
        if handler is not None:
            try:
                result = handler(Request(raw) if raw is not None else None, exc)  # type: ignore[arg-type]
                if inspect.iscoroutine(result):
                    result = self._runner.run_sync(result)
                return result if isinstance(result, Response) else self._render_any(result)
            except Exception as error:  # the handler itself failed
                exc = error
        return self._errors.default(exc, self.production)

    def _render_any(self, value: Any) -> Response:
        if isinstance(value, str):
            return Response(value, media_type="text/plain")
        if isinstance(value, bytes):
            return Response(value, media_type="application/octet-stream")
        if value is None:
            return JSONResponse(None)
        return self._render(value)

    def _on_not_found(self, raw: _core.RawRequest) -> Any:
        raise HTTPException(404, "Not Found")
