"""Direct calls: handlers whose arguments the C core takes from the request itself.

A handler that declares only path, query and header scalars and at most one
model body (no dependencies, no injected objects) gets a ``CallPlan``: the C
core finds, converts and checks each value and calls the handler with them,
with no request object and no Python binder in between. Whatever the plan
cannot take as it is (a missing required value, a percent-encoded one, a
spelling ``int()`` accepts but C does not, a broken constraint, an invalid
body) makes the C core hand the request to the route's compiled binder,
which gives the same result or FastAPI's 422 (``csrc/python/py_direct.h``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

from catzilla import _core, models
from catzilla.calling import convert
from catzilla.calling.render import NO_BODY
from catzilla.calling.signature import Dependant, ParamInfo
from catzilla.params import Undefined
from catzilla.response import JSONResponse


class CallArg(NamedTuple):
    """One argument of a plan: where it comes from, how it is converted, its
    constraints. The fields and their order are csrc/python/py_direct.c's
    (``_core.CALL_ARG_FIELDS``, checked below)."""

    source: str  # "path", "query", "header" or "body"
    key: str
    kind: str  # "str", "int", "float" or "call" (convert is called)
    convert: Callable[[Any], Any] | None
    required: bool
    default: Any
    gt: Any = None
    ge: Any = None
    lt: Any = None
    le: Any = None
    min_length: int | None = None
    max_length: int | None = None


if CallArg._fields != _core.CALL_ARG_FIELDS:  # pragma: no cover - a build out of step with this file
    raise ImportError(f"catzilla._core takes plan arguments as {_core.CALL_ARG_FIELDS}, not {CallArg._fields}")
MAX_ARGS = _core.CALL_PLAN_MAX_ARGS
_SOURCES = ("path", "query", "header", "body")


def _spec(p: ParamInfo) -> tuple[Any, ...] | None:
    """The CallPlan argument for one parameter, or None when only the binder can take it."""
    m = p.marker
    if p.source not in _SOURCES or p.is_list or m.default_factory is not None:
        return None
    if p.default is not Undefined and copy.copy(p.default) is not p.default:
        return None  # a mutable default is copied per request: the binder's job
    required = p.default is Undefined
    default = None if required else p.default
    if p.source == "body":
        if p.adapter is None or getattr(m, "embed", False):
            return None
        validate = p.adapter.json_entry()[0]
        return CallArg("body", "", "call", validate, required, default)
    scalar = p.scalar
    if scalar is None or m.pattern is not None or m.multiple_of is not None:
        return None
    if scalar is convert.INT:
        kind, conv = "int", None
    elif scalar is convert.FLOAT:
        kind, conv = "float", None
    elif scalar.convert is None:
        kind, conv = "str", None
    else:
        kind, conv = "call", scalar.convert
    spec = CallArg(p.source, p.key, kind, conv, required, default)
    if scalar.kind == "number":
        return spec._replace(gt=m.gt, ge=m.ge, lt=m.lt, le=m.le)
    if scalar.kind == "str":
        return spec._replace(min_length=m.min_length, max_length=m.max_length)
    return spec


def _args(root: Dependant) -> list[tuple[Any, ...]] | None:
    if root.deps or root.specials or root.keyword_only or root.kind not in ("function", "coroutine"):
        return None
    by_name = {p.name: p for p in root.params}
    if len(root.order) > MAX_ARGS or set(root.order) != set(by_name):
        return None
    body = [p for p in root.params if p.source == "body"]
    if len(body) > 1:
        return None  # several body parameters embed each one under its name
    specs = []
    for name in root.order:
        spec = _spec(by_name[name])
        if spec is None:
            return None
        specs.append(spec)
    return specs


def plan_for(
    root: Dependant,
    extra: list[Dependant],
    finish: Callable[[Any], Any] | None,
    status: int,
    response_model: Any,
    response_class: Any,
    exclude_none: bool,
    exclude_unset: bool,
    strict_content_type: bool = True,
) -> Any:
    """The handler's ``CallPlan``, or None when it needs the binder for every request.
    ``strict_content_type``: a body without Content-Type is left to the binder (422)."""
    if extra:
        return None
    specs = _args(root)
    if specs is None:
        return None
    if root.is_async:  # the async wrapper applies finish (Binding.endpoint)
        return _core.CallPlan(specs, strict_content_type=strict_content_type)
    options: dict[str, Any] = {"finish": finish, "strict_content_type": strict_content_type}
    if (
        convert.is_class(response_model)
        and status >= 200
        and status not in NO_BODY
        and (response_class is None or response_class is JSONResponse)
    ):
        adapter = models.adapter_for(response_model)
        render, kwargs = adapter.json_renderer(exclude_none, exclude_unset)
        options.update(
            render_type=response_model,
            render=render,
            render_kwargs=kwargs,
            render_shape=adapter.json_shape(exclude_none, exclude_unset),
            status=status,
        )
    return _core.CallPlan(specs, **options)
