"""Type stubs for the C extension catzilla._core (csrc/python/*.c)."""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, final

# ---- py_allocator.c -----------------------------------------------------------------------

@final
class Allocator:
    def __new__(cls, use_jemalloc: bool = True) -> Allocator: ...
    @property
    def backend(self) -> str: ...
    @property
    def fallback_reason(self) -> str | None: ...
    def stats(self) -> dict[str, Any]: ...
    def set_decay(self, dirty_ms: int, muzzy_ms: int, /) -> None: ...
    def purge(self) -> int: ...
    def decay_tick(self) -> None: ...
    def _test_alloc(self, purpose: str, size: int, count: int = 1) -> _Block: ...

@final
class _Block:
    def free(self) -> None: ...
    def free_every(self, step: int, /) -> None: ...

# ---- module.c -------------------------------------------------------------------------------

def build_info() -> dict[str, Any]: ...
def jemalloc_compiled() -> bool: ...

# ---- py_multipart.c -------------------------------------------------------------------------

def parse_multipart(
    allocator: Allocator, body: bytes, content_type: str, max_parts: int, max_field_size: int, /
) -> tuple[int, Any]: ...

# ---- py_pool.c ------------------------------------------------------------------------------

def _pool_configure(start_thread: Callable[[], Any], max_threads: int, /) -> None: ...
def _pool_work() -> None: ...
def _pool_after_fork() -> None: ...

# ---- py_direct.c ----------------------------------------------------------------------------

@final
class CallPlan:
    """How the C core takes a handler's arguments from a request (see catzilla.direct)."""

    def __new__(
        cls,
        args: list[tuple[Any, ...]],
        *,
        render_type: type | None = None,
        render: Callable[..., bytes] | None = None,
        render_kwargs: dict[str, Any] | None = None,
        render_shape: Any = None,
        status: int = 200,
        finish: Callable[[Any], Any] | None = None,
    ) -> CallPlan: ...
    @property
    def render_shape(self) -> Any: ...

# ---- py_request.c: built by the C core only -----------------------------------------------

@final
class RawRequest:
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> bytes: ...
    @property
    def body(self) -> bytes: ...
    @property
    def body_stream(self) -> _BodyStream | None: ...
    @property
    def form_parts(
        self,
    ) -> list[tuple[str, str | None, str, list[tuple[str, str]], Any]] | None: ...
    @property
    def headers(self) -> list[tuple[str, str]]: ...
    @property
    def path_params(self) -> dict[str, str]: ...
    @property
    def client(self) -> tuple[str, int] | None: ...
    @property
    def http_version(self) -> str: ...
    @property
    def allocator(self) -> Allocator: ...

# ---- py_server.c ----------------------------------------------------------------------------

@final
class _Pending:
    """An async handler's request, answered from any thread: once."""

    def done(self, result: Any, /) -> None: ...
    def fail(self, exc: BaseException, /) -> None: ...

@final
class _Stream:
    """A response body from an async iterator, fed by its pump (runner.py)."""

    def push(self, piece: Any, /) -> bool: ...
    def writable(self) -> bool: ...
    def park(self, future: Any, /) -> bool: ...
    def finish(self, exc: BaseException | None, /) -> None: ...

@final
class _BodyStream:
    """A request body arriving while its async handler runs."""

    def take(self) -> bytes | int | None: ...
    def park(self, future: Any, /) -> bool: ...

@final
class Server:
    def __new__(cls, allocator: Allocator) -> Server: ...
    def add_route(
        self,
        methods: str | Iterable[str],
        pattern: str,
        endpoint: list[Any],
        policy: int = 0,
        max_body: int = 0,
        body_mode: int = 0,
        /,
    ) -> int | list[int]: ...
    def set_hooks(
        self,
        json_encode: Callable[[Any], str],
        response_type: type,
        render: Callable[[Any], Any],
        error: Callable[[RawRequest | None, BaseException], Any],
        not_found: Callable[[RawRequest], Any] | None,
        submit: Callable[[Any, _Pending], Any],
        cancel_all: Callable[[], Any],
        cancel: Callable[[_Pending], Any] | None = None,
        spawn: Callable[[Any], Any] | None = None,
        streaming_type: type | None = None,
        file_type: type | None = None,
        log_error: Callable[[str, BaseException], Any] | None = None,
        blocking: Callable[[int], Any] | None = None,
        pump: Callable[[Any, _Stream], Any] | None = None,
        resolve: Callable[[Any], Any] | None = None,
    ) -> None: ...
    def bind(self, host: str, port: int, config: dict[str, float], /) -> int: ...
    def run(self) -> None: ...
    def stop(self) -> None: ...
    def counters(self) -> dict[str, int]: ...
    def set_accounting(
        self, metrics: bool = False, access_log: int = -1, sink: Callable[[str], object] | None = None
    ) -> None: ...
    def metrics(self) -> dict[str, Any]: ...
    def route_table(self) -> dict[int, tuple[str, str]]: ...

@final
class StaticFiles:
    """A directory the C core serves (csrc/server/cz_files.h)."""

    def __new__(
        cls,
        allocator: Allocator,
        directory: bytes,
        flags: int,
        types: Sequence[tuple[str, str]],
        cache_entries: int = 0,
        cache_max_file: int = 0,
        cache_max_bytes: int = 0,
    ) -> StaticFiles: ...
