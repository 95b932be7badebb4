"""orjson (``catzilla[orjson]``) changes no byte: the Python-side JSON with and without it.

``catzilla._json`` is loaded twice: as installed (orjson present: the dev
requirements have it) and again with orjson blocked. Every value of the
table, and many random floats, must encode to the same bytes and fail with
the same error, and every body must parse to the same value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import importlib.util
import json
import math
import random
import struct
import sys
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import msgspec
import pydantic
import pytest

from catzilla import Catzilla, Request, _json
from catzilla.testing import TestClient


@pytest.fixture(scope="module")
def stdlib_json() -> Iterator[ModuleType]:
    """catzilla._json as it is without orjson."""
    saved = sys.modules.get("orjson")
    sys.modules["orjson"] = None  # type: ignore[assignment]  # makes `import orjson` fail
    try:
        spec = importlib.util.find_spec("catzilla._json")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["orjson"]
        else:
            sys.modules["orjson"] = saved
    assert module.orjson is None
    yield module


def test_orjson_is_used_here() -> None:
    assert _json.orjson is not None, "the dev requirements install orjson: these tests must compare both"


class Color(enum.Enum):
    RED = "red"


class Size(int, enum.Enum):
    L = 3


class Tag(str, enum.Enum):
    A = "a"


class Text(str):
    pass


class Number(int):
    pass


class Real(float):
    pass


class Weird(dict):  # type: ignore[type-arg]
    def items(self) -> Any:  # the stdlib's C encoder reads items() of a dict subclass
        return [("weird", True)]


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: str = "p"


class Item(pydantic.BaseModel):
    name: str
    price: float
    when: dt.datetime | None = None


class Struct(msgspec.Struct):
    a: int
    b: list[float]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


UTC = dt.timezone.utc
TABLE: list[Any] = [
    None,
    True,
    {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": "e"}},
    ["", "é", "\u2028\u2029", "😀", "\x00\x1f\x7f", '"\\/', "\n\r\t\b\f"],
    "".join(chr(i) for i in range(0x80)),
    [0, -1, 2**31, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**40, -(10**40)],
    [0.0, -0.0, 1.0, 0.1, 1e-4, 9.99e-5, 1e-5, 1.5e-7, 5e-324, 1e15, 1e16, 1.5e16, 1e22, 1.7976931348623157e308],
    [123456.789, -0.30000000000000004, 2.0**53, 1 / 3],
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    {"when": dt.datetime(2024, 1, 2, 3, 4, 5), "aware": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)},
    [dt.date(2024, 1, 2), dt.time(3, 4, 5), dt.time(3, 4, 5, 123, tzinfo=UTC), dt.timedelta(seconds=1.5)],
    [uuid.UUID("12345678-1234-5678-1234-567812345678"), decimal.Decimal("1.5"), decimal.Decimal("10")],
    [Color.RED, Size.L, Tag.A, Text("sub"), Number(7), Real(0.5)],
    {"set": {3}, "frozen": frozenset({"x"}), "tuple": (1, "a")},
    OrderedDict([("z", 1), ("a", 2)]),
    Weird(a=1),
    {Tag.A: "str-enum key", Text("k"): "str subclass key"},
    Point(1.0, 2e-5),
    [Item(name="n", price=9.99), Item(name="m", price=1e-9, when=dt.datetime(2024, 1, 2, tzinfo=UTC))],
    Struct(a=1, b=[0.5, 1e-6]),
    {"nested": nested(300)},
    nested(254),
    {"bytes": b"raw"},
]
ERRORS: list[Any] = [
    float("nan"),
    {"a": [1, float("inf")]},
    {"a": -math.inf, "b": dt.date(2024, 1, 1)},
    {"obj": object()},
    {"bad": b"\xff"},
    "\ud800",
    {1j: 1},
]


@pytest.mark.parametrize("value", TABLE, ids=lambda v: repr(v)[:40])
def test_same_bytes_with_and_without_orjson(stdlib_json: ModuleType, value: Any) -> None:
    expected = stdlib_json.dumps_bytes(value)
    assert _json.dumps_bytes(value) == expected
    assert _json.dumps(value) == stdlib_json.dumps(value) == expected.decode()


def test_the_reference_is_fastapis_encoder(stdlib_json: ModuleType) -> None:
    value = {"a": [1, 2.5, "é"], "b": None}
    plain = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    assert stdlib_json.dumps_bytes(value) == plain == b'{"a":[1,2.5,"\xc3\xa9"],"b":null}'


@pytest.mark.parametrize("value", ERRORS, ids=lambda v: repr(v)[:40])
def test_same_errors_with_and_without_orjson(stdlib_json: ModuleType, value: Any) -> None:
    with pytest.raises(Exception) as without:
        stdlib_json.dumps_bytes(value)
    with pytest.raises(Exception) as with_orjson:
        _json.dumps_bytes(value)
    assert type(with_orjson.value) is type(without.value)
    assert str(with_orjson.value) == str(without.value)
    # nothing of orjson's in the traceback the catzilla.error log shows
    assert type(with_orjson.value.__context__) is type(without.value.__context__)


def test_random_floats(stdlib_json: ModuleType) -> None:
    rnd = random.Random(10)
    floats = [struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0] for _ in range(20000)]
    floats += [10 ** rnd.uniform(-8, 20) * rnd.choice((1, -1)) for _ in range(20000)]
    floats = [f for f in floats if math.isfinite(f)]
    for chunk in range(0, len(floats), 500):
        value = {"f": floats[chunk : chunk + 500], "d": dt.date(2024, 1, 1)}
        assert _json.dumps_bytes(value) == stdlib_json.dumps_bytes(value)
    for f in floats[:5000]:
        assert _json.dumps_bytes(f) == stdlib_json.dumps_bytes(f), f


BODIES = [
    b'{"a": 1, "b": [true, false, null], "c": "\\u00e9\\n"}',
    b"[1, 2.5, -0, -0.0, 1e5, 1E-7, 0.1]",
    b"123456789012345678901234567890",
    b'{"big": -98765432109876543210, "f": 1.00000000000000000001}',
    b"18446744073709551615",
    b"NaN",
    b"[Infinity, -Infinity]",
    b"1e400",
    b'"\\ud800"',
    b"\xef\xbb\xbf{}",
    '{"utf16": 1}'.encode("utf-16"),
    b'{"a": 1, "a": 2}',
    b" [1] ",
]
BAD_BODIES = [b"", b"{", b"[1,]", b'"\x01"', b"\xff", b"{'a': 1}", b"[1] x"]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: repr(b)[:40])
def test_same_values_parsed(stdlib_json: ModuleType, body: bytes) -> None:
    got, expected = _json.loads(body), stdlib_json.loads(body)
    assert repr(got) == repr(expected)  # repr: NaN != NaN, and 1 == 1.0 would hide a float
    assert type(got) is type(expected)


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: repr(b)[:40])
def test_same_parse_errors(stdlib_json: ModuleType, body: bytes) -> None:
    with pytest.raises(ValueError) as without:
        stdlib_json.loads(body)
    with pytest.raises(ValueError) as with_orjson:
        _json.loads(body)
    assert type(with_orjson.value) is type(without.value)
    assert str(with_orjson.value) == str(without.value)


def test_over_http(stdlib_json: ModuleType) -> None:
    """What the C core declines goes through the hook; bodies parse the same."""
    app = Catzilla(auto_memory_tuning=False)
    value = {"when": dt.datetime(2024, 1, 2, tzinfo=UTC), "tiny": 1e-7, "big": 2**70, 1: "int key"}

    @app.get("/declined")
    def declined() -> Any:
        return value

    @app.post("/echo")
    def echo(request: Request) -> Any:
        return {"parsed": repr(request.json())}

    @app.post("/body")
    def body(data: dict[str, Any]) -> Any:
        return {"parsed": repr(data)}

    with TestClient(app) as client:
        r = client.get("/declined")
        assert r.content == stdlib_json.dumps_bytes(value)
        assert r.content == (
            b'{"when":"2024-01-02T00:00:00+00:00","tiny":1e-07,"big":1180591620717411303424,"1":"int key"}'
        )
        big = b'{"n": 123456789012345678901234567890, "x": NaN}'
        json_ct = {"content-type": "application/json"}
        assert client.post("/echo", content=big, headers=json_ct).json() == {"parsed": repr(json.loads(big))}
        assert client.post("/body", content=big, headers=json_ct).json() == {"parsed": repr(json.loads(big))}
        r = client.post("/body", content=b"{bad", headers=json_ct)
        assert (r.status_code, r.json()["detail"][0]["type"]) == (422, "json_invalid")
    app.close()
