"""JSON on the Python side, with orjson when it is installed (``pip install catzilla[orjson]``).

The C core writes dicts and lists of plain values itself (csrc/python/py_json.c);
what it declines (non-str keys, datetimes, models, sets, ...) is encoded here,
as are ``JSONResponse`` bodies. ``request.json()`` and JSON bodies that no
pydantic or msgspec model reads are parsed by the C reader
(csrc/python/py_json_read.h): ``json.loads``'s values, with ``json.loads``
itself deciding every error, so errors are its own; nesting deeper than 512
levels is a ``JSONDecodeError`` there instead of ``RecursionError``.

With orjson the bytes are exactly the stdlib encoder's, which stays the
reference: wherever orjson would write something else or refuse, the stdlib
does the work. orjson refuses integers beyond 64 bits, non-str keys and
nesting deeper than 255 (caught); subclasses of str, int, dict and list,
datetimes and dataclasses are handed to the same ``default`` as the stdlib's
(passthrough options); and its output is checked for the two spellings that
differ: ``null`` (orjson's NaN and infinities, which the stdlib refuses) and
floats below 1e-4 (``0.00001`` or ``1e-7`` where ``repr`` says ``1e-05``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from catzilla._core import json_read as _json_read

__all__ = ["dumps", "dumps_bytes", "loads", "orjson"]


def _default(value: Any) -> Any:
    from catzilla.encoders import default

    return default(value)


# FastAPI's output: compact, UTF-8 as is, NaN and infinities refused.
_std_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default).encode
_std_loads = json.loads

orjson: Any
try:
    import orjson
except ImportError:  # the extra is not installed
    orjson = None


def _std_dumps_bytes(content: Any) -> bytes:
    return _std_encode(content).encode("utf-8")


if orjson is None:

    def dumps_bytes(content: Any) -> bytes:
        """``content`` as compact JSON, UTF-8."""
        return _std_encode(content).encode("utf-8")

    def dumps(content: Any) -> str:
        """As dumps_bytes, as str (what the C core's hook takes)."""
        return _std_encode(content)

else:
    _orjson_dumps = orjson.dumps
    _OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    # A value token (after ':', ',' or '[', or first) that may not be what the
    # stdlib writes. Text inside strings can match too: then the stdlib
    # encodes, which costs time, never bytes.
    _MAY_DIFFER = re.compile(rb"(?:^|[:,\[])(?:null|-?(?:0\.0000|\d+(?:\.\d+)?e-))")

    def dumps_bytes(content: Any) -> bytes:
        """``content`` as compact JSON, UTF-8; errors as the stdlib's."""
        out: bytes | None
        try:
            out = _orjson_dumps(content, default=_default, option=_OPTIONS)
        except Exception:  # refused: the stdlib encodes it, or raises its own error
            out = None  # (outside this block, so that error is not chained to orjson's)
        if out is None or _MAY_DIFFER.search(out) is not None:
            return _std_dumps_bytes(content)
        return out

    def dumps(content: Any) -> str:
        """As dumps_bytes, as str (what the C core's hook takes)."""
        return dumps_bytes(content).decode("utf-8")


def loads(data: bytes | bytearray | str) -> Any:
    """``json.loads(data)``: the same values, the same errors (bytes and
    bytearray are read in C; str, and every error, by ``json.loads``)."""
    return _json_read(data, _std_loads)
