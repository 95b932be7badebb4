"""Return values into responses, outside the C core's own fast cases.

The C core writes ``dict``/``list``/``None`` (JSON), ``str``, ``bytes`` and
``Response`` itself. Everything else comes here: models (serialized by
their library straight to JSON bytes), and, for routes that declare
``status_code``, ``response_model`` or ``response_class``, the route's
``finish`` step.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from catzilla import _json, models
from catzilla.calling.convert import is_class
from catzilla.exceptions import ResponseValidationError
from catzilla.response import JSONResponse, Response, StreamingResponse, json_bytes_response, json_dumps_bytes

NO_BODY = frozenset({204, 304})
_RENDERERS: dict[type, Callable[[Any], Response] | None] = {}


def _model_renderer(serialize: Callable[[Any], bytes]) -> Callable[[Any], Response]:
    new = object.__new__
    cls = JSONResponse
    ct = ("content-type", "application/json")

    def render(value: Any) -> Response:
        r = new(cls)
        r.status_code = 200
        r.body = serialize(value)
        r.raw_headers = [ct]
        return r

    return render


def _renderer(tp: type) -> Callable[[Any], Response] | None:
    if tp in _RENDERERS:
        return _RENDERERS[tp]
    fn: Callable[[Any], Response] | None = None
    serialize = models.serializer_for(tp)
    if serialize is not None:
        fn = _model_renderer(serialize)
    elif issubclass(tp, (tuple, int, float)):
        fn = lambda v: json_bytes_response(json_dumps_bytes(v))  # noqa: E731
    _RENDERERS[tp] = fn
    return fn


def render_value(value: Any) -> Response:
    """A value the C core does not handle itself; TypeError naming the type if unsupported."""
    fn = _RENDERERS.get(type(value)) or _renderer(type(value))
    if fn is None:
        raise TypeError(
            f"handler returned an unsupported type {type(value).__name__!r}; "
            "return dict, list, str, bytes, None, a model or a Response"
        )
    return fn(value)


def to_response(value: Any, status_code: int = 200) -> Response:
    """Any supported return value as a Response (for middleware and declared status codes)."""
    if isinstance(value, Response):
        return value
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        return StreamingResponse(value, status_code=status_code)
    if status_code in NO_BODY or status_code < 200:
        r = Response(None, status_code=status_code)
        return r
    # a str is a JSON string, as the C core writes it (and FastAPI)
    if isinstance(value, (dict, list, str)) or value is None:
        return json_bytes_response(json_dumps_bytes(value), status_code)
    if isinstance(value, bytes):
        return Response(value, status_code=status_code, media_type="application/octet-stream")
    r = render_value(value)
    r.status_code = status_code
    return r


def make_finish(
    status_code: int | None,
    response_model: Any,
    response_class: type[Response] | None,
    exclude_none: bool = False,
    exclude_unset: bool = False,
    include: Any = None,
    exclude: Any = None,
) -> Callable[[Any], Any] | None:
    """The route's last step, or None when the value can go to the C core as it is.
    ``include``/``exclude``: field names (a set, or FastAPI's nested dict) the
    response keeps or drops (``response_model_include``/``_exclude``)."""
    status = 200 if status_code is None else status_code
    if response_model is None and response_class is None and status == 200:
        return None
    if response_model is not None:
        adapter = models.adapter_for(response_model)
        exact = response_model if is_class(response_model) else None

        def finish_model(value: Any) -> Any:
            if isinstance(value, Response):
                return value
            if status in NO_BODY:
                return Response(None, status_code=status)
            if type(value) is not exact:
                try:
                    value = adapter.coerce(value)
                except models.ModelError as exc:
                    raise ResponseValidationError(exc.errors) from None
            body = adapter.dump_json(value, exclude_none=exclude_none, exclude_unset=exclude_unset)
            if include is not None or exclude is not None:
                body = json_dumps_bytes(pick(_json.loads(body), include, exclude))
            if response_class is not None and response_class is not JSONResponse:
                return response_class(body, status_code=status)
            return json_bytes_response(body, status)

        return finish_model
    if response_class is not None and response_class is not JSONResponse:
        cls = response_class
        # the class's own status unless the route sets one (RedirectResponse: 307)
        kwargs: dict[str, Any] = {} if status_code is None else {"status_code": status_code}

        def finish_class(value: Any) -> Any:
            if isinstance(value, Response):
                return value
            return cls(value, **kwargs)

        return finish_class

    def finish_status(value: Any) -> Any:
        return to_response(value, status)

    return finish_status


def pick(data: Any, include: Any, exclude: Any) -> Any:
    """``data`` with only the ``include`` keys and without the ``exclude`` ones (sets of
    names, or dicts of name -> nested spec / ``...``/True for the whole value)."""
    if isinstance(data, list):
        return [pick(item, include, exclude) for item in data]
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        inner_include = inner_exclude = None
        if include is not None:
            if key not in include:
                continue
            if isinstance(include, dict) and isinstance(include[key], (set, dict)):
                inner_include = include[key]
        if exclude is not None and key in exclude:
            spec = exclude[key] if isinstance(exclude, dict) else True
            if not isinstance(spec, (set, dict)):
                continue
            inner_exclude = spec
        out[key] = pick(value, inner_include, inner_exclude) if (inner_include or inner_exclude) else value
    return out


def materialize(value: Any) -> Any:
    """Before generator dependencies close: models become bytes while their resources live."""
    if isinstance(value, (dict, list, str, bytes, Response)) or value is None:
        return value
    return to_response(value)


def merge_sub_response(value: Any, sub: Response) -> Response:
    """Apply what a handler set on its injected ``response: Response`` to the real one."""
    resp = to_response(value)
    if getattr(sub, "_status_set", False):
        resp.status_code = sub.status_code
    for name, v in sub.raw_headers:
        if name.lower() == "set-cookie":
            resp.append_header(name, v)
        else:
            resp.set_header(name, v)
    return resp


class SubResponse(Response):
    """The ``response: Response`` a handler may declare: status and headers to add."""

    def __init__(self) -> None:
        super().__init__(None)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "status_code" and "status_code" in self.__dict__:
            object.__setattr__(self, "_status_set", True)
        object.__setattr__(self, name, value)


def is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)
