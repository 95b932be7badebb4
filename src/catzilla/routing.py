"""Routes and the decorators that add them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from catzilla.params import Binding

F = TypeVar("F", bound=Callable[..., Any])
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class Route:
    """One registered route, as listed by ``app.routes``."""

    path: str
    methods: frozenset[str]
    name: str
    endpoint: Callable[..., Any] = field(repr=False, compare=False)


class RouteDecorators:
    """``get``, ``post``, ... and ``route``; subclasses implement ``add_route``."""

    def add_route(self, path: str, endpoint: Callable[..., Any], methods: Iterable[str], name: str | None = None) -> Route:
        raise NotImplementedError

    def route(self, path: str, methods: Iterable[str] = ("GET",), name: str | None = None) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            self.add_route(path, fn, methods, name)
            return fn

        return decorator

    def get(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ("GET",), name)

    def head(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ("HEAD",), name)

    def post(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ("POST",), name)

    def put(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ("PUT",), name)

    def patch(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ("PATCH",), name)

    def delete(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ("DELETE",), name)

    def options(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ("OPTIONS",), name)


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


def make_route(path: str, endpoint: Callable[..., Any], methods: list[str], name: str | None) -> tuple[Route, Binding]:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"route path must be a string starting with '/', got {path!r}")
    if not callable(endpoint):
        raise TypeError(f"route handler must be callable, got {endpoint!r}")
    binding = Binding(path, endpoint)
    route = Route(path, frozenset(methods), name or getattr(endpoint, "__name__", repr(endpoint)), endpoint)
    return route, binding
