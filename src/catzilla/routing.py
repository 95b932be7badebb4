"""Routes, the decorators that add them, and route groups.

``RouterGroup(prefix="/api/v1", tags=["v1"])`` collects routes with the same
decorators as the app; ``group.include_routes(other)`` nests groups and
``app.include_routes(group)`` registers them (a snapshot, as FastAPI's
``include_router``). A group's tags, dependencies, responses and middleware
apply to each of its routes; the outer group's come first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from catzilla.datastructures import check_form_limits
from catzilla.params import Undefined

F = TypeVar("F", bound=Callable[..., Any])
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Keyword options of add_route() / the decorators, besides path, methods and name.
ROUTE_OPTIONS = frozenset(
    {
        "threadpool",
        "max_body_size",
        "form_limits",
        "response_model",
        "status_code",
        "tags",
        "dependencies",
        "summary",
        "description",
        "response_description",
        "responses",
        "deprecated",
        "operation_id",
        "include_in_schema",
        "response_class",
        "response_model_exclude_none",
        "response_model_exclude_unset",
        "response_model_include",
        "response_model_exclude",
        "openapi_extra",
        "middleware",
        "websocket",  # set by .websocket(): the route is a WebSocket endpoint
    }
)


@dataclass(frozen=True)
class Route:
    """One registered route, as listed by ``app.routes``."""

    path: str
    methods: frozenset[str]
    name: str
    endpoint: Callable[..., Any] = field(repr=False, compare=False)
    tags: tuple[str, ...] = field(default=(), compare=False)
    summary: str | None = field(default=None, repr=False, compare=False)
    description: str | None = field(default=None, repr=False, compare=False)
    response_description: str = field(default="Successful Response", repr=False, compare=False)
    responses: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    deprecated: bool | None = field(default=None, repr=False, compare=False)
    operation_id: str | None = field(default=None, repr=False, compare=False)
    include_in_schema: bool = field(default=True, repr=False, compare=False)
    status_code: int | None = field(default=None, repr=False, compare=False)
    response_class: Any = field(default=None, repr=False, compare=False)
    openapi_extra: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    binding: Any = field(default=None, repr=False, compare=False)
    middleware: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    websocket: bool = False  # a WebSocket endpoint


class NoMatchFound(Exception):
    """``url_path_for`` found no route or mount of that name taking those parameters."""

    def __init__(self, name: str, path_params: dict[str, Any]) -> None:
        params = ", ".join(sorted(path_params))
        super().__init__(f'No route exists for name "{name}" and params "{params}".')


_PARAM = re.compile(r"{([^{}:]+)(:path)?}")


def fill_path(template: str, params: dict[str, Any]) -> str | None:
    """``template`` with its ``{name}`` / ``{name:path}`` filled from ``params``; None
    unless ``params`` names exactly the template's parameters."""
    names = {m.group(1) for m in _PARAM.finditer(template)}
    if names != set(params):
        return None

    def value(m: re.Match[str]) -> str:
        text = str(params[m.group(1)])
        if not m.group(2) and ("/" in text or not text):
            raise ValueError(f"path parameter {m.group(1)!r} must be a non-empty segment without '/', got {text!r}")
        return text

    return _PARAM.sub(value, template)


def check_options(options: dict[str, Any]) -> None:
    unknown = set(options) - ROUTE_OPTIONS
    if unknown:
        raise TypeError(
            f"unknown route option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(ROUTE_OPTIONS))}"
        )


class RouteDecorators:
    """``get``, ``post``, ... and ``route``; subclasses implement ``add_route``.

    Options (keywords): response_model, status_code, tags, dependencies,
    summary, description, response_description, responses, deprecated,
    operation_id, include_in_schema, response_class,
    response_model_exclude_none, response_model_exclude_unset, middleware,
    max_body_size (bytes this route's request bodies may have; 413 past it),
    form_limits (what its Form/File parameters' form may hold: a dict of
    max_files, max_fields and max_part_size; 400 past them),
    threadpool (where a sync handler runs: None, the default, on the event
    loop until it is seen blocking, then on the thread pool; True the thread
    pool from the first call; False always the loop).
    """

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        **options: Any,
    ) -> Any:
        raise NotImplementedError

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        **options: Any,
    ) -> Any:
        """FastAPI's spelling of ``add_route``."""
        return self.add_route(path, endpoint, methods, name, **options)

    def route(
        self, path: str, methods: Iterable[str] = ("GET",), name: str | None = None, **options: Any
    ) -> Callable[[F], F]:
        check_options(options)

        def decorator(fn: F) -> F:
            self.add_route(path, fn, methods, name, **options)
            return fn

        return decorator

    def api_route(
        self, path: str, *, methods: Iterable[str] = ("GET",), name: str | None = None, **options: Any
    ) -> Callable[[F], F]:
        return self.route(path, methods, name, **options)

    def get(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        return self.route(path, ("GET",), name, **options)

    def websocket(
        self, path: str, name: str | None = None, *, dependencies: Sequence[Any] | None = None
    ) -> Callable[[F], F]:
        """A WebSocket endpoint (catzilla.websockets): ``async def ws(websocket: WebSocket, ...)``,
        with path, query, header and cookie parameters and dependencies as any route."""
        return self.route(
            path, ("GET",), name, websocket=True, include_in_schema=False, dependencies=list(dependencies or [])
        )

    def add_api_websocket_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        name: str | None = None,
        *,
        dependencies: Sequence[Any] | None = None,
    ) -> Any:
        """FastAPI's spelling of registering a WebSocket endpoint without the decorator."""
        return self.add_route(
            path,
            endpoint,
            ("GET",),
            name,
            websocket=True,
            include_in_schema=False,
            dependencies=list(dependencies or []),
        )

    add_websocket_route = add_api_websocket_route

    def head(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        return self.route(path, ("HEAD",), name, **options)

    def post(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        return self.route(path, ("POST",), name, **options)

    def put(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        return self.route(path, ("PUT",), name, **options)

    def patch(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        return self.route(path, ("PATCH",), name, **options)

    def delete(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        return self.route(path, ("DELETE",), name, **options)

    def options(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        return self.route(path, ("OPTIONS",), name, **options)


def normalize_methods(methods: Iterable[str]) -> list[str]:
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of method names, got the string {methods!r}")
    out: list[str] = []
    for m in methods:
        if not isinstance(m, str) or not m:
            raise TypeError(f"method names must be non-empty strings, got {m!r}")
        if m.upper() not in out:
            out.append(m.upper())
    if not out:
        raise ValueError("a route needs at least one method")
    return out


def check_path(path: str) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"route path must be a string starting with '/', got {path!r}")


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or (prefix and (not prefix.startswith("/") or prefix.endswith("/"))):
        raise ValueError(f"a prefix must start with '/' and not end with '/', got {prefix!r}")
    return prefix


def join_path(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return prefix + path if path else prefix


@dataclass(frozen=True)
class RouteDef:
    """A route as a group holds it, before it is registered on an app."""

    path: str
    endpoint: Callable[..., Any]
    methods: tuple[str, ...]
    name: str | None
    options: dict[str, Any]


def merge_options(outer: dict[str, Any], inner: dict[str, Any]) -> dict[str, Any]:
    """A group's options around a route's: lists concatenate (outer first), responses merge,
    the group's response class and body size limit apply to routes that name none."""
    out = dict(inner)
    for key in ("response_class", "max_body_size"):
        if outer.get(key) is not None and inner.get(key) is None:
            out[key] = outer[key]
    for key in ("tags", "dependencies", "middleware"):
        if outer.get(key):
            out[key] = [*outer[key], *(inner.get(key) or [])]
    if outer.get("responses"):
        out["responses"] = {**outer["responses"], **(inner.get("responses") or {})}
    if outer.get("form_limits"):  # key by key, the route's own first (FastAPI's)
        out["form_limits"] = {**outer["form_limits"], **(inner.get("form_limits") or {})}
    if outer.get("deprecated") and inner.get("deprecated") is None:
        out["deprecated"] = True
    if outer.get("include_in_schema") is False:
        out["include_in_schema"] = False
    return out


def include_options(
    tags: Iterable[Any] | None,
    dependencies: Iterable[Any] | None,
    responses: dict[Any, Any] | None,
    deprecated: bool | None,
    include_in_schema: bool,
    default_response_class: Any,
    form_limits: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The options ``include_routes`` adds around each route of a group."""
    return {
        "tags": list(tags or []),
        "dependencies": list(dependencies or []),
        "responses": dict(responses or {}),
        "deprecated": deprecated,
        "include_in_schema": include_in_schema,
        "response_class": default_response_class,
        "form_limits": check_form_limits(form_limits, "include_routes()"),
    }


class RouterGroup(RouteDecorators):
    """Routes under a common prefix, with common tags, dependencies, responses and middleware.
    ``max_body_size`` is the request body limit (bytes) of its routes that set none,
    above or below the app's; ``form_limits`` (a dict of max_files, max_fields and
    max_part_size) bounds their forms, key by key over the app's."""

    def __init__(
        self,
        prefix: str = "",
        *,
        tags: Sequence[str] | None = None,
        dependencies: Sequence[Any] | None = None,
        middleware: Sequence[Any] | None = None,
        responses: dict[Any, Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        default_response_class: Any = None,
        max_body_size: int | None = None,
        form_limits: dict[str, int] | None = None,
    ) -> None:
        self.prefix = check_prefix(prefix)
        self.default_response_class = default_response_class
        self.max_body_size = max_body_size
        self.form_limits = check_form_limits(form_limits, "RouterGroup()")
        self.tags = list(tags or [])
        self.dependencies = list(dependencies or [])
        self.middleware = list(middleware or [])
        self.responses = dict(responses or {})
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self._defs: list[RouteDef] = []

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        **options: Any,
    ) -> RouteDef:
        check_options(options)
        if path:
            check_path(path)
        if not callable(endpoint):
            raise TypeError(f"route handler must be callable, got {endpoint!r}")
        d = RouteDef(path, endpoint, tuple(normalize_methods(methods)), name, options)
        self._defs.append(d)
        return d

    def _own_options(self) -> dict[str, Any]:
        return {
            "tags": self.tags,
            "dependencies": self.dependencies,
            "middleware": self.middleware,
            "responses": self.responses,
            "deprecated": self.deprecated,
            "include_in_schema": self.include_in_schema,
            "response_class": self.default_response_class,
            "max_body_size": self.max_body_size,
            "form_limits": self.form_limits,
        }

    def route_defs(self) -> list[RouteDef]:
        """This group's routes with its prefix and options applied."""
        own = self._own_options()
        return [
            replace(d, path=join_path(self.prefix, d.path), options=merge_options(own, d.options)) for d in self._defs
        ]

    def include_routes(
        self,
        group: RouterGroup,
        *,
        prefix: str = "",
        tags: Sequence[str] | None = None,
        dependencies: Sequence[Any] | None = None,
        responses: dict[Any, Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        default_response_class: Any = None,
        form_limits: dict[str, int] | None = None,
    ) -> None:
        """Nest ``group`` (its routes as they are now) under this one, with more
        tags, dependencies and responses (FastAPI's ``include_router`` options)."""
        check_prefix(prefix)
        extra = include_options(
            tags, dependencies, responses, deprecated, include_in_schema, default_response_class, form_limits
        )
        for d in group.route_defs():
            self._defs.append(replace(d, path=join_path(prefix, d.path), options=merge_options(extra, d.options)))

    include_router = include_routes

    @property
    def routes(self) -> list[RouteDef]:
        return self.route_defs()


class Webhooks(RouteDecorators):
    """``app.webhooks``: requests the API sends to its users' URLs, described in the
    OpenAPI document's ``webhooks`` (FastAPI's): ``@app.webhooks.post("new-subscription")``
    on a function whose parameters (its body model) say what is sent. Nothing is served."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] = ("POST",),
        name: str | None = None,
        **options: Any,
    ) -> Route:
        from catzilla.calling.call import Binding  # binding -> ... -> routing

        check_options(options)
        if not isinstance(path, str) or not path:
            raise ValueError(f"a webhook needs a name, got {path!r}")
        if not callable(endpoint):
            raise TypeError(f"webhook handler must be callable, got {endpoint!r}")
        binding = Binding(
            path,
            endpoint,
            status_code=options.get("status_code"),
            response_model=options.get("response_model", Undefined),
            response_class=options.get("response_class"),
        )
        route = Route(
            path,
            frozenset(normalize_methods(methods)),
            name or str(getattr(endpoint, "__name__", None) or repr(endpoint)),
            endpoint,
            tags=tuple(options.get("tags") or ()),
            summary=options.get("summary"),
            description=options.get("description"),
            response_description=options.get("response_description") or "Successful Response",
            responses=dict(options.get("responses") or {}),
            deprecated=options.get("deprecated"),
            operation_id=options.get("operation_id"),
            include_in_schema=options.get("include_in_schema", True),
            status_code=options.get("status_code"),
            response_class=options.get("response_class"),
            openapi_extra=options.get("openapi_extra"),
            binding=binding,
        )
        self._routes.append(route)
        return route

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)


APIRouter = RouterGroup
APIRoute = Route  # FastAPI's name, for annotations such as generate_unique_id_function(route: APIRoute)
