"""Parameter markers: ``Path``, ``Query``, ``Header``, ``Cookie``, ``Body``, ``Form``.

Used as FastAPI's are, as a default or inside ``Annotated``::

    def search(q: str = Query(min_length=2), page: Annotated[int, Query(ge=1)] = 1): ...

Markers only describe; ``catzilla.calling.signature`` reads them once when a route is
added and ``catzilla.calling.bind`` turns the result into the per-request binder.
``Binding`` (the analysed, compiled handler) is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# How the C core calls a route's endpoint list: defined in csrc/python/py_server.c.
# NO_ARGS: with no arguments; REQUEST: with a RawRequest; DIRECT: it takes the
# arguments itself (catzilla.calling.plan), else calls the binder; STATIC: it serves a
# StaticFiles directory itself; WS: a WebSocket route (the handshake checked first).
from catzilla._core import MODE_DIRECT as MODE_DIRECT
from catzilla._core import MODE_NO_ARGS as MODE_NO_ARGS
from catzilla._core import MODE_REQUEST as MODE_REQUEST
from catzilla._core import MODE_STATIC as MODE_STATIC
from catzilla._core import MODE_WS as MODE_WS


class _UndefinedType:
    """No default: the parameter is required."""

    _instance: _UndefinedType | None = None

    def __new__(cls) -> _UndefinedType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Undefined"

    def __bool__(self) -> bool:
        return False


Undefined: Any = _UndefinedType()


class Param:
    """Where a value comes from, with FastAPI's constraint keywords."""

    source = ""

    def __init__(
        self,
        default: Any = Undefined,
        *,
        default_factory: Any = None,
        alias: str | None = None,
        title: str | None = None,
        description: str | None = None,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        multiple_of: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        regex: str | None = None,
        examples: list[Any] | None = None,
        example: Any = Undefined,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        json_schema_extra: dict[str, Any] | None = None,
        openapi_examples: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        self.default = Undefined if default is ... else default
        self.default_factory = default_factory
        self.alias = alias
        self.title = title
        self.description = description
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.multiple_of = multiple_of
        self.min_length = min_length
        self.max_length = max_length
        self.pattern = pattern if pattern is not None else regex
        self.examples = examples if examples is not None else ([example] if example is not Undefined else None)
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.json_schema_extra = dict(json_schema_extra or {}, **extra)
        # named examples for the OpenAPI document (a parameter's, or its request body's)
        self.openapi_examples = openapi_examples

    @property
    def required(self) -> bool:
        return self.default is Undefined and self.default_factory is None

    def constraints(self) -> dict[str, Any]:
        """The constraint keywords that were given."""
        names = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def __repr__(self) -> str:
        args = [] if self.default is Undefined else [repr(self.default)]
        args += [f"{k}={v!r}" for k, v in self.constraints().items()]
        if self.alias:
            args.append(f"alias={self.alias!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class Path(Param):
    """A ``{name}`` segment of the route path. Always required."""

    source = "path"


class Query(Param):
    """A query-string parameter; ``list[X]`` collects repeated keys."""

    source = "query"


class Header(Param):
    """A request header. ``user_agent`` reads ``user-agent`` unless ``convert_underscores=False``."""

    source = "header"

    def __init__(self, default: Any = Undefined, *, convert_underscores: bool = True, **kwargs: Any) -> None:
        super().__init__(default, **kwargs)
        self.convert_underscores = convert_underscores


class Cookie(Param):
    """A cookie from the ``Cookie`` header."""

    source = "cookie"


class Body(Param):
    """Part of a JSON body. With ``embed=True`` (or several body parameters) the body
    is an object with one key per parameter."""

    source = "body"

    def __init__(
        self,
        default: Any = Undefined,
        *,
        embed: bool | None = None,
        media_type: str = "application/json",
        **kwargs: Any,
    ) -> None:
        super().__init__(default, **kwargs)
        self.embed = embed
        self.media_type = media_type


class Form(Param):
    """A field of an ``application/x-www-form-urlencoded`` body."""

    source = "form"

    def __init__(
        self, default: Any = Undefined, *, media_type: str = "application/x-www-form-urlencoded", **kwargs: Any
    ) -> None:
        super().__init__(default, **kwargs)
        self.media_type = media_type


class File(Form):
    """A file of a ``multipart/form-data`` body: annotate the parameter
    ``UploadFile`` (or ``bytes`` for its content, or a list of either)."""

    def __init__(self, default: Any = Undefined, *, media_type: str = "multipart/form-data", **kwargs: Any) -> None:
        super().__init__(default, media_type=media_type, **kwargs)


def __getattr__(name: str) -> Any:
    # Binding lives in catzilla.calling.call; imported lazily to keep this module a leaf.
    if name == "Binding":
        from catzilla.calling.call import Binding

        return Binding
    raise AttributeError(name)


# ---- dependencies (what runs them: catzilla.calling.dependencies) ----


class Depends:
    """``Depends(callable)``; ``Depends()`` inside ``Annotated[Cls, Depends()]`` calls ``Cls``."""

    def __init__(
        self, dependency: Callable[..., Any] | None = None, *, use_cache: bool = True, scope: str | None = None
    ) -> None:
        if scope not in (None, "function", "request"):
            raise ValueError(f"Depends(scope=...) is 'function' or 'request', got {scope!r}")
        self.dependency = dependency
        self.use_cache = use_cache
        # FastAPI's: when a generator dependency's exit code runs. Catzilla closes
        # generators once the handler's response is built, before it is sent,
        # which satisfies both ("function": right after the handler).
        self.scope = scope

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__name__", type(self.dependency).__name__)
        return f"Depends({name}{'' if self.use_cache else ', use_cache=False'})"


class Security(Depends):
    """As Depends; ``scopes`` are recorded for OpenAPI only."""

    def __init__(
        self, dependency: Callable[..., Any] | None = None, *, scopes: list[str] | None = None, use_cache: bool = True
    ) -> None:
        super().__init__(dependency, use_cache=use_cache)
        self.scopes = list(scopes or [])
