"""Binding a handler's parameters, worked out once when the route is added.

A handler may take nothing, ``request``, path parameters by name (converted
by annotation: int, float, str, bool, uuid.UUID) and query parameters by
name (with defaults; Optional allowed). A value that does not convert is a
422 naming the parameter, in FastAPI's error shape.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from catzilla._core import RawRequest
from catzilla.exceptions import RequestValidationError
from catzilla.request import Request

PATH_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::path)?}")
TRUE = {"1", "true", "on", "yes", "t", "y"}
FALSE = {"0", "false", "off", "no", "f", "n"}

MODE_NO_ARGS = 0
MODE_REQUEST = 1


def to_bool(value: str) -> bool:
    v = value.lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ValueError(value)


Converter = Callable[[str], Any]
CONVERTERS: dict[Any, tuple[Converter, str, str]] = {
    int: (int, "int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
    float: (float, "float_parsing", "Input should be a valid number, unable to parse string as a number"),
    bool: (to_bool, "bool_parsing", "Input should be a valid boolean, unable to interpret input"),
    uuid.UUID: (uuid.UUID, "uuid_parsing", "Input should be a valid UUID"),
    str: (str, "", ""),
    Any: (str, "", ""),
}


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def converter_for(name: str, annotation: Any) -> tuple[Converter, str, str]:
    if annotation is inspect.Parameter.empty:
        return CONVERTERS[str]
    if annotation not in CONVERTERS:
        raise TypeError(
            f"parameter {name!r}: unsupported annotation {annotation!r} "
            "(use int, float, str, bool or uuid.UUID)"
        )
    return CONVERTERS[annotation]


class Binding:
    """How one handler is called: its mode for the C core and its binder."""

    def __init__(self, path: str, handler: Callable[..., Any]) -> None:
        path_names = set(PATH_PARAM.findall(path))
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        sig = inspect.signature(handler)
        try:
            hints = typing.get_type_hints(handler)
        except Exception:
            hints = {}
        self.request_param: str | None = None
        self.path_params: list[tuple[str, Converter, str, str]] = []
        self.query_params: list[tuple[str, Converter, str, str, Any]] = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"handler {handler.__name__}: *args/**kwargs cannot be bound")
            annotation = hints.get(p.name, p.annotation)
            if annotation is Request or (p.name == "request" and annotation is inspect.Parameter.empty):
                self.request_param = p.name
                continue
            inner, _optional = unwrap_optional(annotation)
            conv = converter_for(p.name, inner)
            if p.name in path_names:
                self.path_params.append((p.name, *conv))
            else:
                self.query_params.append((p.name, *conv, p.default))
        self.mode = (
            MODE_NO_ARGS
            if not (self.request_param or self.path_params or self.query_params)
            else MODE_REQUEST
        )

    def endpoint(self) -> Callable[..., Any]:
        """What the C core calls: the handler itself, or a binder taking a RawRequest."""
        if self.mode == MODE_NO_ARGS:
            return self.handler
        return self.bind

    def bind(self, raw: RawRequest) -> Any:
        kwargs: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        if self.path_params:
            values = raw.path_params
            for name, conv, kind, msg in self.path_params:
                value = values[name]
                if "%" in value:
                    value = unquote(value)
                try:
                    kwargs[name] = conv(value)
                except ValueError:
                    errors.append({"type": kind, "loc": ["path", name], "msg": msg, "input": value})
        if self.query_params:
            query = dict(parse_qsl(raw.query_string.decode("latin-1"), keep_blank_values=True))
            for name, conv, kind, msg, default in self.query_params:
                if name not in query:
                    if default is inspect.Parameter.empty:
                        errors.append({"type": "missing", "loc": ["query", name], "msg": "Field required", "input": None})
                    else:
                        kwargs[name] = default
                    continue
                try:
                    kwargs[name] = conv(query[name])
                except ValueError:
                    errors.append({"type": kind, "loc": ["query", name], "msg": msg, "input": query[name]})
        if errors:
            raise RequestValidationError(errors)
        if self.request_param:
            kwargs[self.request_param] = Request(raw)
        return self.handler(**kwargs)
