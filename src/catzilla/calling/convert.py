"""Scalar conversion for path, query, header, cookie and form values.

A request value arrives as a string; a handler declares what it wants
(``int``, ``float``, ``bool``, ``str``, ``uuid.UUID``, ``Decimal``, dates,
``Enum``, ``Literal``). Each supported type maps to a ``Scalar``: a
converter raising ``ValueError`` and the error it gives, in pydantic v2's
words, so a 422 reads as FastAPI's does. Anything else falls back to a
pydantic ``TypeAdapter`` when pydantic is installed.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import inspect
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def is_class(tp: Any) -> bool:
    """A real class: on 3.10 ``isinstance(list[int], type)`` is True too."""
    return isinstance(tp, type) and not isinstance(tp, types.GenericAlias)


TRUE = frozenset({"1", "true", "on", "yes", "t", "y"})
FALSE = frozenset({"0", "false", "off", "no", "f", "n"})
LIST_ORIGINS = (list, set, frozenset, tuple, typing.List, typing.Set, typing.Sequence)  # noqa: UP006


def to_bool(value: str) -> bool:
    v = value.lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ValueError(value)


def to_int(value: str) -> int:
    if "_" in value:  # int() accepts "1_000"; pydantic does not
        raise ValueError(value)
    return int(value)


def to_decimal(value: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError(value) from None


class ScalarError(ValueError):
    """pydantic's own error for a value the fast conversion did not take."""

    def __init__(self, type_: str, msg: str, ctx: dict[str, Any] | None) -> None:
        super().__init__(msg)
        self.type = type_
        self.msg = msg
        self.ctx = ctx


_ADAPTERS: dict[Any, Any] = {}


def plain_ctx(value: Any) -> Any:
    """An error's context value as FastAPI's JSON has it (an exception encodes as {})."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, BaseException):
        return {}
    return str(value)


def annotated_scalar(base: Scalar, annotation: Any) -> Scalar:
    """``base`` with the pydantic metadata of an ``Annotated`` (validators such as
    ``AfterValidator``, ``Field`` and ``annotated_types`` constraints) applied by
    pydantic, as FastAPI does; without pydantic, ``base``."""
    try:
        import pydantic  # noqa: F401
    except ImportError:
        return base
    fallback = base.convert or (lambda v: v)

    def convert(value: str) -> Any:
        return pydantic_lax(annotation, value, fallback)

    return Scalar(annotation, convert, base.error_type or "value_error", base.error_msg, base.error_ctx,
                  kind=base.kind, json_schema=dict(base.json_schema))  # fmt: skip


def pydantic_lax(tp: Any, value: str, fallback: Callable[[str], Any]) -> Any:
    """``value`` as pydantic's lax mode makes it ``tp`` (FastAPI's conversion), or
    ``fallback(value)`` without pydantic. ScalarError carries pydantic's error."""
    adapter = _ADAPTERS.get(tp)
    if adapter is None:
        try:
            import pydantic
        except ImportError:
            return fallback(value)
        adapter = _ADAPTERS[tp] = pydantic.TypeAdapter(tp)
    try:
        return adapter.validate_python(value)
    except Exception as exc:  # pydantic.ValidationError
        errors = getattr(exc, "errors", None)
        if errors is None:
            raise
        first = errors(include_url=False)[0]
        ctx = first.get("ctx")
        if ctx:
            ctx = {k: plain_ctx(v) for k, v in ctx.items()}
        raise ScalarError(first["type"], first["msg"], ctx or None) from None


def exact(tp: Any, fast: re.Pattern[str], convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """A converter that is exactly pydantic's lax mode: ``convert`` for the common
    spellings ``fast`` matches (where both agree), pydantic for everything else."""
    match = fast.match

    def conv(value: str) -> Any:
        if match(value):
            try:
                return convert(value)
            except ValueError:
                pass
        return pydantic_lax(tp, value, convert)

    conv.__name__ = f"to_{getattr(tp, '__name__', 'value')}"
    return conv


_FLOAT_RE = re.compile(r"[+-]?[0-9]{1,15}(\.[0-9]{1,15})?([eE][+-]?[0-9]{1,3})?\Z")
_DECIMAL_RE = re.compile(r"[+-]?[0-9]{1,15}(\.[0-9]{1,15})?\Z")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?\Z"
)
_TIME_RE = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?\Z")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


@dataclass(frozen=True)
class Scalar:
    """How one string becomes one value: ``convert`` raises ValueError/TypeError on bad input."""

    annotation: Any
    convert: Callable[[str], Any] | None  # None: the string itself
    error_type: str = ""
    error_msg: str = ""
    error_ctx: dict[str, Any] | None = None
    kind: str = "str"  # "str", "number" or "other": which constraints apply
    json_schema: dict[str, Any] = field(default_factory=dict)


def to_int_exact(value: str) -> int:
    """pydantic's lax int: int() agrees with it on ASCII text (it refuses "1.0",
    which pydantic takes); the rest is pydantic's."""
    if value.isascii():
        try:
            return int(value)
        except ValueError:
            pass
    return int(pydantic_lax(int, value, to_int))


INT = Scalar(
    int,
    to_int_exact,
    "int_parsing",
    "Input should be a valid integer, unable to parse string as an integer",
    kind="number",
    json_schema={"type": "integer"},
)
FLOAT = Scalar(
    float,
    exact(float, _FLOAT_RE, float),
    "float_parsing",
    "Input should be a valid number, unable to parse string as a number",
    kind="number",
    json_schema={"type": "number"},
)
BOOL = Scalar(
    bool,
    to_bool,
    "bool_parsing",
    "Input should be a valid boolean, unable to interpret input",
    kind="other",
    json_schema={"type": "boolean"},
)
STR = Scalar(str, None, json_schema={"type": "string"})
ANY = Scalar(Any, None, json_schema={})
UUID = Scalar(
    uuid.UUID,
    exact(uuid.UUID, _UUID_RE, uuid.UUID),
    "uuid_parsing",
    "Input should be a valid UUID",
    kind="other",
    json_schema={"type": "string", "format": "uuid"},
)
DECIMAL = Scalar(
    decimal.Decimal,
    exact(decimal.Decimal, _DECIMAL_RE, to_decimal),
    "decimal_parsing",
    "Input should be a valid decimal",
    kind="number",
    json_schema={"anyOf": [{"type": "number"}, {"type": "string"}]},
)
if sys.version_info >= (3, 11):
    parse_datetime, parse_time = dt.datetime.fromisoformat, dt.time.fromisoformat
else:
    # 3.10's fromisoformat reads only its own output: no "Z" for UTC, and
    # fractions of exactly 3 or 6 digits. Rewritten into that form, the
    # spellings 3.11+ accept most often (RFC 3339) parse the same on 3.10.
    _FRACTION = re.compile(r"(?<=\d\d:\d\d:\d\d)[.,](\d+)")

    def _iso310(text: str) -> str:
        if text[-2:-1].isdigit() and text.endswith("Z"):
            text = text[:-1] + "+00:00"
        return _FRACTION.sub(lambda m: "." + (m.group(1) + "00000")[:6], text, count=1)

    def parse_datetime(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(_iso310(text))

    def parse_time(text: str) -> dt.time:
        return dt.time.fromisoformat(_iso310(text))


DATE = Scalar(
    dt.date,
    exact(dt.date, _DATE_RE, dt.date.fromisoformat),
    "date_parsing",
    "Input should be a valid date in the format YYYY-MM-DD",
    kind="other",
    json_schema={"type": "string", "format": "date"},
)
DATETIME = Scalar(
    dt.datetime,
    exact(dt.datetime, _DATETIME_RE, parse_datetime),
    "datetime_parsing",
    "Input should be a valid datetime",
    kind="other",
    json_schema={"type": "string", "format": "date-time"},
)
TIME = Scalar(
    dt.time,
    exact(dt.time, _TIME_RE, parse_time),
    "time_parsing",
    "Input should be a valid time",
    kind="other",
    json_schema={"type": "string", "format": "time"},
)


def _as_upload(v: Any) -> Any:
    from catzilla.datastructures import UploadFile

    if not isinstance(v, UploadFile):
        raise ValueError(f"Expected UploadFile, received: {type(v)}")
    return v


def _as_bytes(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    v.file.seek(0)
    data: bytes = v.file.read()
    return data


def upload_scalar() -> Scalar:
    from catzilla.datastructures import UploadFile

    return Scalar(
        UploadFile,
        _as_upload,
        "value_error",
        "Value error, Expected UploadFile, received: <class 'str'>",  # FastAPI's words
        error_ctx={"error": {}},
        kind="other",
        json_schema={"type": "string", "contentMediaType": "application/octet-stream"},  # FastAPI's
    )


BYTES = Scalar(
    bytes, _as_bytes, kind="other", json_schema={"type": "string", "contentMediaType": "application/octet-stream"}
)

BUILTIN: dict[Any, Scalar] = {
    bytes: BYTES,
    int: INT,
    float: FLOAT,
    bool: BOOL,
    str: STR,
    Any: ANY,
    uuid.UUID: UUID,
    decimal.Decimal: DECIMAL,
    dt.date: DATE,
    dt.datetime: DATETIME,
    dt.time: TIME,
}


def quote_list(values: list[Any]) -> str:
    """pydantic's "'a', 'b' or 'c'"."""
    shown = [repr(v) if isinstance(v, str) else str(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def enum_scalar(cls: type[enum.Enum]) -> Scalar:
    values = [m.value for m in cls]
    by_text = {str(v): cls(v) for v in values}

    def convert(value: str) -> enum.Enum:
        try:
            return by_text[value]
        except KeyError:
            raise ValueError(value) from None

    expected = quote_list(values)
    types_ = {type(v) for v in values}
    schema: dict[str, Any] = {"enum": values, "title": cls.__name__}
    if types_ == {str}:
        schema["type"] = "string"
    elif types_ == {int}:
        schema["type"] = "integer"
    return Scalar(
        cls, convert, "enum", f"Input should be {expected}", {"expected": expected}, kind="other", json_schema=schema
    )


def literal_scalar(annotation: Any) -> Scalar:
    values = list(typing.get_args(annotation))
    by_text = {str(v).lower() if isinstance(v, bool) else str(v): v for v in values}

    def convert(value: str) -> Any:
        try:
            return by_text[value]
        except KeyError:
            raise ValueError(value) from None

    expected = quote_list(values)
    return Scalar(
        annotation,
        convert,
        "literal_error",
        f"Input should be {expected}",
        {"expected": expected},
        kind="other",
        json_schema={"enum": values},
    )


def adapter_scalar(annotation: Any) -> Scalar | None:
    """Any other type, through pydantic when it is installed (lax mode: strings convert)."""
    try:
        import pydantic
    except ImportError:
        return None
    try:
        adapter = pydantic.TypeAdapter(annotation)
        schema = adapter.json_schema()
    except Exception:
        return None
    validate = adapter.validate_python

    def convert(value: str) -> Any:
        try:
            return validate(value)
        except pydantic.ValidationError as exc:
            raise ValueError(exc.errors(include_url=False)[0]["msg"]) from None

    return Scalar(annotation, convert, "value_error", "", kind="other", json_schema=schema)


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``Optional[X]`` / ``X | None`` -> (X, True); anything else -> (annotation, False)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            if len(args) == 1:
                return args[0], True
            return typing.Union[tuple(args)], True  # noqa: UP007
    return annotation, False


def list_item(annotation: Any) -> Any | None:
    """The item type of ``list[X]`` (also ``List``, ``set``, ``tuple[X, ...]``, ``Sequence``); None otherwise."""
    origin = typing.get_origin(annotation)
    if annotation in (list, set, tuple, frozenset):
        return str
    if origin in LIST_ORIGINS or origin in (list, set, frozenset, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return args[0] if args else str
    return None


def scalar_for(annotation: Any) -> Scalar | None:
    """The Scalar for a (non-Optional, non-list) annotation; None when it is not a scalar type."""
    if annotation is inspect.Parameter.empty:
        return STR
    if annotation in BUILTIN:
        return BUILTIN[annotation]
    if getattr(annotation, "__name__", None) == "UploadFile" and annotation.__module__ == "catzilla.datastructures":
        return upload_scalar()
    if is_class(annotation) and issubclass(annotation, enum.Enum):
        return enum_scalar(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return literal_scalar(annotation)
    if is_class(annotation) and issubclass(annotation, str):
        return Scalar(annotation, annotation, kind="str", json_schema={"type": "string"})
    return None


def describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def from_json(scalar: Scalar, value: Any) -> Any:
    """A JSON value (a body field) as the scalar type: native JSON types pass, strings convert."""
    ann = scalar.annotation
    if ann is Any:
        return value
    if ann is bool:
        if isinstance(value, bool):
            return value
    elif ann is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif ann is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif ann is str:
        if isinstance(value, str):
            return value
        raise ValueError(value)
    if isinstance(value, str) and scalar.convert is not None:
        return scalar.convert(value)
    if scalar.convert is not None and not isinstance(value, (bool, dict, list)) and value is not None:
        return scalar.convert(str(value))
    raise ValueError(value)
