"""Request and response models: pydantic v2, msgspec, dataclasses, TypedDict.

Neither pydantic nor msgspec is required: each is imported only when a
handler uses one of its types (a class cannot subclass ``BaseModel`` unless
pydantic is already imported, so ``sys.modules`` tells). Validation is
theirs, through the fastest entry each has: ``__pydantic_validator__
.validate_json`` and ``msgspec.json.Decoder(type).decode``; serialization
through ``__pydantic_serializer__.to_json`` and ``msgspec.json.encode``.

Dataclasses, TypedDicts and containers of models (``list[Item]``) use
pydantic when it is installed, else msgspec, else a shape-only fallback
(JSON object with the required keys; field types are not checked).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import re
import sys
import typing
from collections.abc import Callable
from typing import Any

from catzilla import _json
from catzilla.calling.convert import is_class as _is_class
from catzilla.calling.shapes import Shape, pydantic_shape

ErrorList = list[dict[str, Any]]
SIMPLE = (str, int, float, bool, type(None))


class ModelError(Exception):
    """A body did not validate; ``errors`` are FastAPI-shaped, locations relative to the body."""

    def __init__(self, errors: ErrorList) -> None:
        super().__init__(errors)
        self.errors = errors


def _pydantic() -> Any:
    return sys.modules.get("pydantic")


def _msgspec() -> Any:
    return sys.modules.get("msgspec")


def is_pydantic_model(tp: Any) -> bool:
    pd = _pydantic()
    return pd is not None and _is_class(tp) and issubclass(tp, pd.BaseModel)


def is_struct(tp: Any) -> bool:
    ms = _msgspec()
    return ms is not None and _is_class(tp) and issubclass(tp, ms.Struct)


def is_model_type(tp: Any) -> bool:
    """A type that is a body by itself: a model, a dataclass, a TypedDict."""
    return (
        is_pydantic_model(tp)
        or is_struct(tp)
        or (_is_class(tp) and dataclasses.is_dataclass(tp))
        or typing.is_typeddict(tp)
    )


def contains_model(tp: Any) -> bool:
    """``list[Item]``, ``dict[str, Item]``, ``Item | None``... (for bodies and response models)."""
    if is_model_type(tp):
        return True
    return any(contains_model(a) for a in typing.get_args(tp) if a is not Ellipsis)


def _has_struct(tp: Any) -> bool:
    return is_struct(tp) or any(_has_struct(a) for a in typing.get_args(tp) if a is not Ellipsis)


def clean_ctx(ctx: dict[str, Any]) -> dict[str, Any]:
    # an exception (a validator's ValueError) is {} in FastAPI's JSON
    return {k: v if isinstance(v, SIMPLE) else {} if isinstance(v, BaseException) else str(v) for k, v in ctx.items()}


def pydantic_errors(exc: Any, prefix: tuple[Any, ...] = ()) -> ErrorList:
    out = []
    for e in exc.errors(include_url=False):
        item = {"type": e["type"], "loc": [*prefix, *e["loc"]], "msg": e["msg"], "input": e.get("input")}
        if e.get("ctx"):
            item["ctx"] = clean_ctx(e["ctx"])
        out.append(item)
    return out


_MSGSPEC_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.S)
_MSGSPEC_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[(?:'|\")?([^\]'\"]*)(?:'|\")?\]")
_MSGSPEC_MISSING = re.compile(r"^Object missing required field `(.+)`$")


def msgspec_errors(exc: Exception, prefix: tuple[Any, ...] = ()) -> ErrorList:
    """msgspec reports the first error as text: "Expected `int`, got `str` - at `$.price`"."""
    text = str(exc)
    m = _MSGSPEC_AT.match(text)
    msg, path = (m.group(1), m.group(2) or "") if m else (text, "")
    loc: list[Any] = list(prefix)
    for key, index, other in _MSGSPEC_PART.findall(path):
        loc.append(int(index) if index else (key or other))
    ms = _msgspec()
    if ms is not None and not isinstance(exc, ms.ValidationError):
        return [{"type": "json_invalid", "loc": loc, "msg": f"JSON decode error: {msg}", "input": None}]
    missing = _MSGSPEC_MISSING.match(msg)
    if missing:
        return [{"type": "missing", "loc": [*loc, missing.group(1)], "msg": "Field required", "input": None}]
    return [{"type": "value_error", "loc": loc, "msg": msg, "input": None}]


class Adapter:
    """Validation and serialization of one model type."""

    kind = ""

    def __init__(self, tp: Any) -> None:
        self.type = tp
        self.name = getattr(tp, "__name__", repr(tp))

    def validate_json(self, data: bytes) -> Any:
        raise NotImplementedError

    def validate_python(self, obj: Any, *, lax: bool = False) -> Any:
        raise NotImplementedError

    def dump_json(self, value: Any, *, exclude_none: bool = False, exclude_unset: bool = False) -> bytes:
        raise NotImplementedError

    def coerce(self, value: Any) -> Any:
        """A handler's return value as this (response) type: validated, extra fields dropped."""
        return self.validate_python(value)

    def json_renderer(self, exclude_none: bool, exclude_unset: bool) -> tuple[Callable[..., bytes], dict[str, Any]]:
        """``(fn, kwargs)``: ``fn(value, **kwargs)`` is ``dump_json`` of an instance, by the fastest call."""
        return self.dump_json, {"exclude_none": exclude_none, "exclude_unset": exclude_unset}

    def json_shape(self, exclude_none: bool, exclude_unset: bool) -> Shape | None:
        """The shape the C core writes instances by (``catzilla.calling.shapes``), or None: the renderer does it."""
        return None

    # Fast path for the compiled binder: (callable, exception types, converter).
    def json_entry(
        self,
    ) -> tuple[
        Callable[[bytes], Any], tuple[type[BaseException], ...], Callable[[BaseException, tuple[Any, ...]], ErrorList]
    ]:
        return self.validate_json, (ModelError,), _model_error_list


def _model_error_list(exc: BaseException, prefix: tuple[Any, ...]) -> ErrorList:
    assert isinstance(exc, ModelError)
    return [dict(e, loc=[*prefix, *e["loc"]]) for e in exc.errors]


class PydanticAdapter(Adapter):
    kind = "pydantic"

    def __init__(self, tp: Any) -> None:
        super().__init__(tp)
        pd = _pydantic() or __import__("pydantic")
        self._pd = pd
        if is_pydantic_model(tp):
            self.validator = tp.__pydantic_validator__
            self.serializer = tp.__pydantic_serializer__
            self._schema = tp.__pydantic_core_schema__
        else:
            ta = pd.TypeAdapter(tp)
            self.validator = ta.validator
            self.serializer = ta.serializer
            self._schema = ta.core_schema
            self._ta = ta

    def validate_json(self, data: bytes) -> Any:
        try:
            return self.validator.validate_json(data)
        except self._pd.ValidationError as exc:
            raise ModelError(pydantic_errors(exc)) from None

    def validate_python(self, obj: Any, *, lax: bool = False) -> Any:
        try:
            return self.validator.validate_python(obj)
        except self._pd.ValidationError as exc:
            raise ModelError(pydantic_errors(exc)) from None

    def coerce(self, value: Any) -> Any:
        try:
            return self.validator.validate_python(value, from_attributes=True)
        except self._pd.ValidationError as exc:
            raise ModelError(pydantic_errors(exc)) from None

    def dump_json(self, value: Any, *, exclude_none: bool = False, exclude_unset: bool = False) -> bytes:
        data: bytes = self.serializer.to_json(
            value, by_alias=True, exclude_none=exclude_none, exclude_unset=exclude_unset
        )
        return data

    def json_entry(self) -> Any:
        return self.validator.validate_json, (self._pd.ValidationError,), pydantic_errors

    def json_renderer(self, exclude_none: bool, exclude_unset: bool) -> tuple[Callable[..., bytes], dict[str, Any]]:
        # by_alias changes nothing when no field has an alias, and every keyword costs a parse per call.
        aliased = "serialization_alias" in repr(self._schema)
        kwargs = {"by_alias": aliased, "exclude_none": exclude_none, "exclude_unset": exclude_unset}
        return self.serializer.to_json, {k: v for k, v in kwargs.items() if v}

    def json_shape(self, exclude_none: bool, exclude_unset: bool) -> Shape | None:
        if exclude_none or exclude_unset or not is_pydantic_model(self.type):
            return None
        return pydantic_shape(self._schema, self.type)


class MsgspecAdapter(Adapter):
    kind = "msgspec"

    def __init__(self, tp: Any) -> None:
        super().__init__(tp)
        ms = _msgspec() or __import__("msgspec")
        self._ms = ms
        self.decoder = ms.json.Decoder(tp)
        self.encode = ms.json.Encoder().encode

    def validate_json(self, data: bytes) -> Any:
        try:
            return self.decoder.decode(data)
        except self._ms.DecodeError as exc:  # ValidationError is a DecodeError
            raise ModelError(msgspec_errors(exc)) from None

    def validate_python(self, obj: Any, *, lax: bool = False) -> Any:
        try:
            return self._ms.convert(obj, self.type, strict=not lax)
        except self._ms.ValidationError as exc:
            raise ModelError(msgspec_errors(exc)) from None

    def coerce(self, value: Any) -> Any:
        if type(value) is self.type:
            return value
        try:
            return self._ms.convert(value, self.type, from_attributes=True)
        except self._ms.ValidationError as exc:
            raise ModelError(msgspec_errors(exc)) from None

    def dump_json(self, value: Any, *, exclude_none: bool = False, exclude_unset: bool = False) -> bytes:
        data: bytes = self.encode(value)
        if exclude_none:
            data = json.dumps(_drop_none(json.loads(data)), separators=(",", ":"), ensure_ascii=False).encode()
        return data

    def json_entry(self) -> Any:
        return self.decoder.decode, (self._ms.DecodeError,), msgspec_errors

    def json_renderer(self, exclude_none: bool, exclude_unset: bool) -> tuple[Callable[..., bytes], dict[str, Any]]:
        if exclude_none:
            return super().json_renderer(exclude_none, exclude_unset)
        return self.encode, {}


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


class PlainAdapter(Adapter):
    """No pydantic, no msgspec: dataclasses and TypedDicts by shape, containers by JSON type."""

    kind = "plain"

    def validate_json(self, data: bytes) -> Any:
        try:
            obj = _json.loads(data)
        except ValueError as exc:
            raise ModelError(
                [{"type": "json_invalid", "loc": [], "msg": f"JSON decode error: {exc}", "input": None}]
            ) from None
        return self.validate_python(obj)

    def validate_python(self, obj: Any, *, lax: bool = False) -> Any:
        return _plain_validate(self.type, obj, [])

    def dump_json(self, value: Any, *, exclude_none: bool = False, exclude_unset: bool = False) -> bytes:
        from catzilla.encoders import jsonable_encoder

        data = jsonable_encoder(value, exclude_none=exclude_none)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _plain_validate(tp: Any, obj: Any, loc: list[Any]) -> Any:
    if (_is_class(tp) and dataclasses.is_dataclass(tp)) or typing.is_typeddict(tp):
        if not isinstance(obj, dict):
            raise ModelError(
                [{"type": "dict_type", "loc": loc, "msg": "Input should be a valid dictionary", "input": obj}]
            )
        if typing.is_typeddict(tp):
            required = tp.__required_keys__
            hints = typing.get_type_hints(tp)
            fields = {n: (n in required) for n in hints}
        else:
            hints = typing.get_type_hints(tp)
            fields = {
                f.name: f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                for f in dataclasses.fields(tp)
                if f.init
            }
        missing = [n for n, req in fields.items() if req and n not in obj]
        if missing:
            raise ModelError(
                [{"type": "missing", "loc": [*loc, n], "msg": "Field required", "input": obj} for n in missing]
            )
        values = {n: _plain_validate(hints.get(n, Any), obj[n], [*loc, n]) for n in fields if n in obj}
        return values if typing.is_typeddict(tp) else tp(**values)
    origin = typing.get_origin(tp)
    if origin in (list, set, tuple, frozenset) or tp in (list, set, tuple):
        if not isinstance(obj, list):
            raise ModelError([{"type": "list_type", "loc": loc, "msg": "Input should be a valid list", "input": obj}])
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return [_plain_validate(item, v, [*loc, i]) for i, v in enumerate(obj)]
    if origin is dict or tp is dict:
        if not isinstance(obj, dict):
            raise ModelError(
                [{"type": "dict_type", "loc": loc, "msg": "Input should be a valid dictionary", "input": obj}]
            )
        args = typing.get_args(tp)
        value_type = args[1] if len(args) == 2 else Any
        return {k: _plain_validate(value_type, v, [*loc, k]) for k, v in obj.items()}
    return obj


_CACHE: dict[Any, Adapter] = {}


def adapter_for(tp: Any) -> Adapter:
    """The adapter for a model type (or a container of them), built once per type."""
    try:
        return _CACHE[tp]
    except (KeyError, TypeError):
        pass
    adapter: Adapter
    if is_pydantic_model(tp):
        adapter = PydanticAdapter(tp)
    elif _has_struct(tp):
        adapter = MsgspecAdapter(tp)
    else:
        adapter = _library_adapter(tp)
    with contextlib.suppress(TypeError):  # an unhashable type is analysed each time
        _CACHE[tp] = adapter
    return adapter


def _library_adapter(tp: Any) -> Adapter:
    for name, cls in (("pydantic", PydanticAdapter), ("msgspec", MsgspecAdapter)):
        if name in sys.modules and sys.modules[name] is None:  # blocked
            continue
        try:
            __import__(name)
            return cls(tp)
        except ImportError:
            continue
        except Exception:  # the library cannot handle this type
            continue
    return PlainAdapter(tp)


def serializer_for(tp: type) -> Callable[[Any], bytes] | None:
    """JSON bytes for an instance of a model class (for return values); None if not a model."""
    if is_pydantic_model(tp):
        model: Any = tp  # a pydantic model class: its serializer is set by its metaclass
        return functools.partial(model.__pydantic_serializer__.to_json, by_alias=True)
    if is_struct(tp):
        return _msgspec().json.encode  # type: ignore[no-any-return]
    if dataclasses.is_dataclass(tp):
        adapter = adapter_for(tp)
        return adapter.dump_json
    return None
