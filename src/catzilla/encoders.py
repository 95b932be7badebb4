"""``jsonable_encoder``: what JSON cannot hold natively, made JSON-able (as in FastAPI).

Used for values nested inside a returned dict or list (models, dataclasses,
datetimes, UUIDs, Decimals, enums, sets...). Plain dicts and lists never get
here: the C core writes them itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import sys
import uuid
from collections.abc import Callable
from typing import Any


def _decimal(value: decimal.Decimal) -> int | float:
    exponent = value.as_tuple().exponent
    return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)


ENCODERS: dict[type, Callable[[Any], Any]] = {
    dt.datetime: dt.datetime.isoformat,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    dt.timedelta: lambda v: v.total_seconds(),
    uuid.UUID: str,
    decimal.Decimal: _decimal,
    bytes: lambda v: v.decode(),
    set: list,
    frozenset: list,
    pathlib.PurePath: str,
}


def default(value: Any) -> Any:
    """One step towards JSON for ``json.JSONEncoder(default=...)``; TypeError when there is none."""
    ms = sys.modules.get("msgspec")
    if ms is not None and isinstance(value, ms.Struct):
        return ms.to_builtins(value)
    pd = sys.modules.get("pydantic")
    if pd is not None and isinstance(value, pd.BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    for cls in type(value).__mro__:
        fn = ENCODERS.get(cls)
        if fn is not None:
            return fn(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def jsonable_encoder(obj: Any, *, exclude_none: bool = False) -> Any:
    """``obj`` as plain dicts, lists, strings, numbers, booleans and None."""
    if isinstance(obj, (str, int, float, type(None))):
        return obj
    if isinstance(obj, dict):
        return {
            str(jsonable_encoder(k)): jsonable_encoder(v, exclude_none=exclude_none)
            for k, v in obj.items()
            if not (exclude_none and v is None)
        }
    if isinstance(obj, (list, tuple)):
        return [jsonable_encoder(v, exclude_none=exclude_none) for v in obj]
    return jsonable_encoder(default(obj), exclude_none=exclude_none)
