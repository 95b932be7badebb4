"""Record shapes: the C core writes plain pydantic answers itself, with pydantic's bytes (catzilla.calling.shapes)."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any, Optional

import pytest
from pydantic import BaseModel, ConfigDict, Field, RootModel, computed_field, field_serializer, field_validator

from catzilla import Catzilla, _core, models
from catzilla.calling.shapes import pydantic_shape
from catzilla.testing import TestClient
from tests.framework.twins import same, twins


class Plain(BaseModel):
    name: str
    price: float
    count: int = 0
    on: bool = False
    note: Optional[str] = None
    tags: list[str] = []
    grid: list[list[Optional[float]]] = []


class Validated(BaseModel):
    name: str = Field(min_length=1, max_length=50)

    @field_validator("name")
    @classmethod
    def strip(cls, v: str) -> str:
        return v.strip()


class Aliased(BaseModel):
    name: str = Field(alias="Name")


class Serialized(BaseModel):
    name: str

    @field_serializer("name")
    def upper(self, v: str) -> str:
        return v.upper()


class Computed(BaseModel):
    name: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def size(self) -> int:
        return len(self.name)


class Excluded(BaseModel):
    name: str
    secret: str = Field("s", exclude=True)


class Extra(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class InfAsString(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")
    x: float


class Nested(BaseModel):
    inner: Plain


class Mapping(BaseModel):
    data: dict[str, int]


class Root(RootModel[list[int]]):
    pass


def test_plain_models_have_a_shape() -> None:
    assert pydantic_shape(Plain.__pydantic_core_schema__, Plain) == (
        ("name", "s"),
        ("price", "f"),
        ("count", "i"),
        ("on", "b"),
        ("note", "ns"),
        ("tags", "ls"),
        ("grid", "llnf"),
    )
    assert pydantic_shape(Validated.__pydantic_core_schema__, Validated) == (("name", "s"),)


@pytest.mark.parametrize("model", [Aliased, Serialized, Computed, Excluded, Extra, InfAsString, Nested, Mapping, Root])
def test_models_written_their_own_way_have_none(model: type[BaseModel]) -> None:
    assert pydantic_shape(model.__pydantic_core_schema__, model) is None
    assert pydantic_shape(Plain.__pydantic_core_schema__, model) is None  # another class's schema


def test_answer_options_that_change_the_output_keep_pydantic() -> None:
    adapter = models.adapter_for(Plain)
    assert adapter.json_shape(False, False) is not None
    assert adapter.json_shape(True, False) is None  # response_model_exclude_none
    assert adapter.json_shape(False, True) is None  # response_model_exclude_unset


@pytest.mark.parametrize(
    "shape, message",
    [
        ([("a", "s")], "a shape is a tuple"),
        ((("a", "x"),), "invalid kind 'x' for shape field 'a'"),
        ((("a", "ln"),), "invalid kind 'ln'"),
        ((("a", "ss"),), "invalid kind 'ss'"),
        ((("a",),), "a shape is a tuple"),
    ],
)
def test_call_plan_rejects_bad_shapes_by_name(shape: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        _core.CallPlan([], render_type=Plain, render=str, render_shape=shape)


def _floats(n: int) -> list[float]:
    rnd = random.Random(6)
    out = [
        0.0,
        -0.0,
        1e-4,
        -1e-4,
        9.999999999999999e-05,
        1e-5,
        2.5e-06,
        0.00012,
        1e-7,
        5e-324,
        0.1 + 0.2,
        1e15,
        999999999999999.9,
        1e16,
        1e22,
        1.7976931348623157e308,
        123456.789012345,
        100.0,
        9.5,
        19.99,
    ]
    while len(out) < n:
        r = rnd.random()
        if r < 0.35:
            v = round(rnd.uniform(-1e6, 1e6), rnd.randint(0, 8))
        elif r < 0.55:
            v = struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0]
        elif r < 0.8:
            v = rnd.uniform(-10, 10) * 10.0 ** rnd.randint(-8, 18)
        else:
            v = float(rnd.randint(-(10**17), 10**17))
        if math.isfinite(v):
            out.append(v)
    return out


def test_shape_answers_are_pydantic_bytes() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def echo(item: Plain) -> Plain:
        return item

    twins(app, "POST", "/echo", echo)
    plans = {r.path: t[2] for r, t, _ in app._endpoints if len(t) > 2}
    assert plans["/d/echo"].render_shape == pydantic_shape(Plain.__pydantic_core_schema__, Plain)
    floats = _floats(2000)
    strings = [
        "",
        "plain",
        "é ü 😀 中文",
        'quote " back \\ slash',
        "ctl \x00 \x01 \x1f \x7f \n\r\t\b\f",
        "\u2028\u2029",
        "</script>",
        "a/b",
    ]
    with TestClient(app) as client:
        for i in range(0, len(floats), 100):
            chunk = floats[i : i + 100]
            body = json.dumps(
                {
                    "name": strings[i // 100 % len(strings)],
                    "price": chunk[0],
                    "count": 10**30 + i,
                    "on": i % 2 == 0,
                    "note": None if i % 3 else "n",
                    "tags": strings,
                    "grid": [chunk, [None, *chunk[:3]], []],
                }
            )
            r = same(client, "POST", "/echo", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200
            assert r.content == Plain.__pydantic_serializer__.to_json(Plain.model_validate_json(body)), body[:200]


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic's "unexpected value" warning on purpose
def test_values_the_shape_leaves_to_pydantic() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def odd(kind: str) -> Plain:
        item = Plain(name="n", price=1.5, tags=["a"])
        if kind == "tiny":
            item.price = 1e-7  # pydantic writes 1e-7, repr() 1e-07
        elif kind == "inf":
            item.price = math.inf  # null under the default ser_json_inf_nan
        elif kind == "nan":
            item.price = math.nan
        elif kind == "str-for-float":
            item.price = "x"  # type: ignore[assignment]
        elif kind == "int-for-float":
            item.price = 3  # type: ignore[assignment]
        elif kind == "bool-for-int":
            item.count = True
        elif kind == "tuple-for-list":
            item.tags = ("a", "b")  # type: ignore[assignment]
        elif kind == "int-in-list":
            item.tags = ["a", 1]  # type: ignore[list-item]
        elif kind == "missing":
            return Plain.model_construct(name="only")
        elif kind == "str-subclass":
            item.name = type("S", (str,), {})("sub")
        return item

    twins(app, "GET", "/odd", odd)
    with TestClient(app, raise_server_exceptions=False) as client:
        for kind in (
            "tiny",
            "inf",
            "nan",
            "str-for-float",
            "int-for-float",
            "bool-for-int",
            "tuple-for-list",
            "int-in-list",
            "missing",
            "str-subclass",
            "plain",
        ):
            assert same(client, "GET", f"/odd?kind={kind}").status_code == 200, kind
        assert same(client, "GET", "/odd?kind=tiny").content.startswith(b'{"name":"n","price":1e-7,')
        assert same(client, "GET", "/odd?kind=inf").json()["price"] is None
        assert same(client, "GET", "/odd?kind=missing").content == Plain.__pydantic_serializer__.to_json(
            Plain.model_construct(name="only"), warnings=False
        )


def test_models_without_a_shape_answer_as_before() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def upper(name: str) -> Serialized:
        return Serialized(name=name)

    def computed(name: str) -> Computed:
        return Computed(name=name)

    def extra(name: str) -> Extra:
        return Extra(name=name, more=1)  # type: ignore[call-arg]

    twins(app, "GET", "/upper", upper)
    twins(app, "GET", "/computed", computed)
    twins(app, "GET", "/extra", extra)
    with TestClient(app) as client:
        assert same(client, "GET", "/upper?name=ab").content == b'{"name":"AB"}'
        assert same(client, "GET", "/computed?name=ab").content == b'{"name":"ab","size":2}'
        assert same(client, "GET", "/extra?name=ab").content == b'{"name":"ab","more":1}'
