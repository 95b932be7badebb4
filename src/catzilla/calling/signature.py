"""Reading a handler's signature, once, into a ``Dependant`` tree (as FastAPI does).

Each parameter is classified, in this order:

1. a marker (``Query()``, ``Header()``, ... as default or in ``Annotated``) says where it comes from;
2. ``Depends(...)``: a dependency, analysed the same way, recursively;
3. ``Request`` (or a parameter named ``request`` without annotation), ``Response``,
   ``BackgroundTasks``: injected objects;
4. a name that appears as ``{name}`` in the path: a path parameter;
5. a model (pydantic, msgspec, dataclass, TypedDict), a container of models, or ``dict``: the JSON body;
6. anything else: a query parameter (``list[X]`` collects repeated keys).

Unsupported annotations are a TypeError here, when the route is added.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catzilla import models
from catzilla.background import BackgroundTasks
from catzilla.calling import convert
from catzilla.calling.convert import Scalar
from catzilla.datastructures import UploadFile
from catzilla.params import Body, Cookie, Depends, File, Form, Header, Param, Path, Query, Undefined
from catzilla.request import HTTPConnection
from catzilla.response import Response
from catzilla.security import SecurityScopes

PATH_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::path)?}")
MARKERS = {"path": Path, "query": Query, "header": Header, "cookie": Cookie, "body": Body, "form": Form}


@dataclass(eq=False)
class ParamInfo:
    """One request value a callable declares."""

    name: str
    source: str  # "path", "query", "header", "cookie", "body", "form"
    key: str  # what is looked up: the alias, the lowercased header name, ...
    annotation: Any  # as declared
    inner: Any  # without Optional and without list[]
    marker: Param
    default: Any = Undefined
    optional: bool = False  # None is acceptable
    is_list: bool = False
    scalar: Scalar | None = None  # path/query/header/cookie/form values
    adapter: models.Adapter | None = None  # body models (and form models)
    param_model: Any = None  # a query/header/cookie parameter model (catzilla.calling.param_models)

    @property
    def required(self) -> bool:
        return self.default is Undefined and self.marker.default_factory is None


@dataclass(eq=False)
class Dependant:
    """A callable and what it needs: request values, injected objects, other dependencies."""

    call: Callable[..., Any]
    params: list[ParamInfo] = field(default_factory=list)
    deps: list[tuple[str, Dependant]] = field(default_factory=list)
    # name -> "request" | "response" | "background" | "scopes" (SecurityScopes)
    specials: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # parameter names, in signature order
    keyword_only: set[str] = field(default_factory=set)
    use_cache: bool = True
    kind: str = "function"  # "function", "coroutine", "generator", "asyncgen"
    scopes: tuple[str, ...] = ()  # the OAuth2 scopes of the Security chain to it
    declared: Any = None  # the dependency as the route names it (before dependency_overrides)

    @property
    def is_async(self) -> bool:
        return self.kind in ("coroutine", "asyncgen")

    def walk(self) -> list[Dependant]:
        """This dependant and every dependency below it, depth first."""
        out = [self]
        for _, sub in self.deps:
            out.extend(sub.walk())
        return out

    def any_async(self) -> bool:
        return any(d.is_async for d in self.walk())

    def all_params(self) -> list[ParamInfo]:
        return [p for d in self.walk() for p in d.params]


def path_names(path: str) -> set[str]:
    return set(PATH_PARAM.findall(path))


def callable_kind(call: Callable[..., Any]) -> str:
    target = call
    if not (inspect.isfunction(target) or inspect.ismethod(target)) and not isinstance(target, type):
        target = getattr(call, "__call__", call)  # noqa: B004
    if inspect.isasyncgenfunction(target):
        return "asyncgen"
    if inspect.isgeneratorfunction(target):
        return "generator"
    if inspect.iscoroutinefunction(target):
        return "coroutine"
    return "function"


def _no_defaults(target: Any) -> Any:
    """What get_type_hints should read on 3.10, which makes ``x: T = None``
    Optional[T] (3.11 dropped that): the annotations and globals without the
    defaults, so every version binds what was written."""
    if sys.version_info >= (3, 11) or not inspect.isfunction(target):
        return target
    return types.SimpleNamespace(__annotations__=target.__annotations__, __globals__=inspect.unwrap(target).__globals__)


def type_hints(call: Callable[..., Any]) -> dict[str, Any]:
    target: Any = call
    if isinstance(call, type):
        target = typing.cast(Any, call).__init__  # the class's own, for its annotations
    elif not (inspect.isfunction(call) or inspect.ismethod(call)) and hasattr(call, "__call__"):  # noqa: B004
        target = call.__call__
    try:
        return typing.get_type_hints(_no_defaults(target), include_extras=True)
    except Exception:
        pass
    # One annotation did not resolve (e.g. a class local to a function under
    # ``from __future__ import annotations``): resolve the others one by one.
    raw = dict(getattr(target, "__annotations__", {}) or {})
    globalns = getattr(target, "__globals__", {})
    closure = inspect.getclosurevars(target).nonlocals if inspect.isfunction(target) else {}
    out: dict[str, Any] = {}
    for name, ann in raw.items():
        if isinstance(ann, str):
            # a name that does not resolve stays a string (as typing.get_type_hints would fail)
            with contextlib.suppress(Exception):
                ann = eval(ann, dict(globalns), dict(closure))
        out[name] = ann
    return out


def split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        return args[0], list(args[1:])
    return annotation, []


def describe_call(call: Callable[..., Any]) -> str:
    return getattr(call, "__qualname__", None) or getattr(call, "__name__", None) or repr(call)


def analyze(
    call: Callable[..., Any],
    path: str,
    *,
    use_cache: bool = True,
    overrides: dict[Any, Any] | None = None,
    _stack: tuple[Any, ...] = (),
    _scopes: tuple[str, ...] = (),
) -> Dependant:
    """The Dependant for ``call`` as used on a route with this ``path``; ``_scopes``:
    the OAuth2 scopes the ``Security`` chain leading to it asks for."""
    if call in _stack:
        raise TypeError(f"dependency cycle through {describe_call(call)}")
    names_in_path = path_names(path)
    dep = Dependant(call=call, use_cache=use_cache, kind=callable_kind(call), scopes=_scopes)
    try:
        sig = inspect.signature(call)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {describe_call(call)}: {exc}") from None
    hints = type_hints(call)
    where = describe_call(call)
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{where}: *args/**kwargs cannot be bound (parameter {p.name!r})")
        dep.order.append(p.name)
        if p.kind == p.KEYWORD_ONLY:
            dep.keyword_only.add(p.name)
        annotation = hints.get(p.name, p.annotation)
        if isinstance(annotation, str):
            raise TypeError(
                f"{where}: the annotation of {p.name!r} ({annotation!r}) cannot be resolved; "
                "define the types it names at module level"
            )
        base, metadata = split_annotated(annotation)
        marker = next((m for m in metadata if isinstance(m, (Param, Depends))), None)
        default = p.default
        if isinstance(default, (Param, Depends)):
            if marker is not None:
                raise TypeError(f"{where}: parameter {p.name!r} has a marker both in Annotated and as default")
            marker, default = default, Undefined
        if default is inspect.Parameter.empty:
            default = Undefined
        if isinstance(marker, Depends):
            sub_call = marker.dependency if marker.dependency is not None else base
            if not callable(sub_call):
                raise TypeError(f"{where}: Depends() on parameter {p.name!r} needs a callable")
            sub_call_used = overrides[sub_call] if overrides and sub_call in overrides else sub_call
            scopes = (*_scopes, *getattr(marker, "scopes", ()))
            sub = analyze(
                sub_call_used,
                path,
                use_cache=marker.use_cache,
                overrides=overrides,
                _stack=(*_stack, call),
                _scopes=scopes,
            )
            sub.declared = sub_call
            dep.deps.append((p.name, sub))
            continue
        special = special_kind(p.name, base, marker)
        if special:
            dep.specials[p.name] = special
            continue
        dep.params.append(param_info(where, p.name, base, annotation, marker, default, names_in_path))
    return dep


def special_kind(name: str, base: Any, marker: Any) -> str | None:
    if marker is not None:
        return None
    if convert.is_class(base):
        if issubclass(base, HTTPConnection):  # a Request, or a WebSocket on a WebSocket route
            return "request"
        if issubclass(base, Response):
            return "response"
        if issubclass(base, BackgroundTasks):
            return "background"
        if issubclass(base, SecurityScopes):
            return "scopes"
    if name == "request" and base is inspect.Parameter.empty:
        return "request"
    return None


def param_info(
    where: str, name: str, base: Any, annotation: Any, marker: Param | None, default: Any, names_in_path: set[str]
) -> ParamInfo:
    inner, optional = convert.unwrap_optional(base)
    if marker is None:
        if name in names_in_path:
            marker = Path()
        elif inner is dict or typing.get_origin(inner) is dict or models.contains_model(inner):
            marker = Body()
        elif (convert.list_item(inner) or inner) is UploadFile:
            marker = File()  # as in FastAPI: an UploadFile comes from the form
        else:
            marker = Query()
    source = marker.source
    if source == "path" and name not in names_in_path and (marker.alias or name) not in names_in_path:
        raise TypeError(f"{where}: Path parameter {name!r} is not in the route path")
    if marker.default is not Undefined:
        if default is not Undefined:
            raise TypeError(f"{where}: parameter {name!r} has a default in both the marker and the signature")
        default = marker.default
    if default is None:
        optional = True
    if source == "header":
        hdr = typing.cast(Header, marker)
        key = marker.alias or (name.replace("_", "-") if hdr.convert_underscores else name)
        key = key.lower()
    elif source == "path":
        key = marker.alias if marker.alias in names_in_path else name
    else:
        key = marker.alias or name
    info = ParamInfo(
        name=name,
        source=source,
        key=key,
        annotation=base,
        inner=inner,
        marker=marker,
        default=default,
        optional=optional,
    )
    if source == "body":
        info.adapter = body_adapter(where, name, inner)
        if info.adapter is None:
            info.scalar = scalar_or_fail(where, name, inner)
        return info
    if source == "form" and models.contains_model(inner):
        info.adapter = models.adapter_for(inner)
        return info
    if source in ("query", "header", "cookie") and models.is_pydantic_model(inner):
        from catzilla.calling.param_models import param_model

        underscores = getattr(marker, "convert_underscores", True)
        info.param_model = param_model(source, inner, optional, default, underscores)
        return info
    item = convert.list_item(inner)
    if item is not None:
        info.is_list = True
        item, _ = convert.unwrap_optional(item)
        info.inner = item
        if source == "path":
            raise TypeError(f"{where}: path parameter {name!r} cannot be a list")
    info.scalar = scalar_or_fail(where, name, info.inner)
    _, metadata = split_annotated(annotation)
    extra = [m for m in metadata if not isinstance(m, (Param, Depends))]
    if extra and not info.is_list:
        # pydantic's validators and constraints: pydantic applies them (the fast
        # conversion is kept only where nothing else was declared)
        info.scalar = convert.annotated_scalar(info.scalar, typing.Annotated[tuple([info.inner, *extra])])
    return info


def body_adapter(where: str, name: str, inner: Any) -> models.Adapter | None:
    if inner is inspect.Parameter.empty or inner is Any:
        return models.adapter_for(Any) if _has_library() else models.PlainAdapter(Any)
    if convert.scalar_for(inner) is not None:
        return None
    return models.adapter_for(inner)


def _has_library() -> bool:
    import sys

    for name in ("pydantic", "msgspec"):
        if sys.modules.get(name, False) is None:
            continue
        try:
            __import__(name)
            return True
        except ImportError:
            continue
    return False


def scalar_or_fail(where: str, name: str, annotation: Any) -> Scalar:
    scalar = convert.scalar_for(annotation) or convert.adapter_scalar(annotation)
    if scalar is None:
        raise TypeError(
            f"{where}: parameter {name!r}: unsupported annotation {convert.describe(annotation)} "
            "(use int, float, str, bool, uuid.UUID, Decimal, date, datetime, an Enum, a Literal, "
            "a list of those, or a model for a body; install pydantic for other types)"
        )
    return scalar
