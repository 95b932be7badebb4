"""Request bodies as models (pydantic, msgspec, dataclasses, TypedDict); returning models; response_model."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Optional, TypedDict

import msgspec
import pytest
from pydantic import BaseModel, Field

from catzilla import Body, Catzilla, JSONResponse, Query
from catzilla.exceptions import ResponseValidationError
from catzilla.testing import TestClient


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


class ItemOut(BaseModel):
    name: str
    price: float


class User(BaseModel):
    username: str


class Point(msgspec.Struct):
    x: int
    y: int = 0


@dataclasses.dataclass
class Note:
    title: str
    stars: int = 0


class Movie(TypedDict):
    title: str
    year: int


def make_app() -> Catzilla:
    app = Catzilla(auto_memory_tuning=False)

    @app.post("/items")
    def create(item: Item, q: str, limit: int = Query(10, ge=1)):
        return {"item": item.model_dump(), "q": q, "limit": limit, "type": type(item).__name__}

    @app.post("/items/return-model")
    def return_model(item: Item) -> Item:
        return item

    @app.post("/items/filtered", response_model=ItemOut, status_code=201)
    def filtered(item: Item):
        return item  # tags dropped by the response model

    @app.get("/items/from-dict", response_model=ItemOut)
    def from_dict():
        return {"name": "d", "price": 2, "secret": "x"}

    @app.get("/items/bad-output", response_model=ItemOut)
    def bad_output():
        return {"name": "d"}

    @app.get("/items/list", response_model=list[ItemOut])
    def many():
        return [Item(name="a", price=1, tags=["t"]), {"name": "b", "price": 2}]

    @app.post("/optional")
    def optional(item: Optional[Item] = None):
        return {"got": item is not None}

    @app.post("/embed")
    def embed(item: Annotated[Item, Body(embed=True)]):
        return {"name": item.name}

    @app.post("/multi")
    def multi(item: Item, user: User, importance: int = Body(gt=0)):
        return {"item": item.name, "user": user.username, "importance": importance}

    @app.post("/struct")
    def struct(p: Point) -> Point:
        return Point(x=p.x * 2, y=p.y * 2)

    @app.post("/dataclass")
    def dc(note: Note) -> Note:
        return Note(title=note.title.upper(), stars=note.stars + 1)

    @app.post("/typeddict")
    def td(movie: Movie):
        return {"title": movie["title"], "next": movie["year"] + 1}

    @app.post("/dict")
    def raw_dict(payload: dict):
        return {"keys": sorted(payload)}

    @app.get("/nested-models")
    def nested():
        return {"items": [Item(name="a", price=1)], "point": Point(x=1), "note": Note("n")}

    @app.post("/async-body")
    async def async_body(item: Item) -> Item:
        return item

    @app.get("/json-response")
    def json_response():
        return JSONResponse({"custom": True}, status_code=202)

    return app


@pytest.fixture(scope="module")
def client():
    app = make_app()
    with TestClient(app) as c:
        yield c
    app.close()


def test_pydantic_body_with_typed_query(client: TestClient) -> None:
    r = client.post("/items?q=x&limit=3", json={"name": "a", "price": 2.5})
    assert r.status_code == 200
    assert r.json() == {"item": {"name": "a", "price": 2.5, "tags": []}, "q": "x", "limit": 3, "type": "Item"}


def test_pydantic_errors_are_422_with_body_locations(client: TestClient) -> None:
    r = client.post("/items?q=x", json={"name": "", "price": -1})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [(e["type"], e["loc"]) for e in detail] == [
        ("string_too_short", ["body", "name"]),
        ("greater_than", ["body", "price"]),
    ]
    assert detail[1]["ctx"] == {"gt": 0.0} and detail[1]["input"] == -1


def test_body_and_query_errors_together(client: TestClient) -> None:
    r = client.post("/items?limit=0", json={"price": 1})
    locs = [e["loc"] for e in r.json()["detail"]]
    assert locs == [["query", "q"], ["query", "limit"], ["body", "name"]]


def test_invalid_json_and_missing_body(client: TestClient) -> None:
    r = client.post("/items?q=x", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    assert r.json()["detail"][0]["loc"][0] == "body"
    r = client.post("/items?q=x")
    assert r.json() == {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]}


def test_returning_a_model_serializes_it(client: TestClient) -> None:
    r = client.post("/items/return-model", json={"name": "a", "price": 1, "tags": ["x"]})
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"name": "a", "price": 1.0, "tags": ["x"]}


def test_response_model_filters_and_sets_status(client: TestClient) -> None:
    r = client.post("/items/filtered", json={"name": "a", "price": 1, "tags": ["x"]})
    assert r.status_code == 201
    assert r.json() == {"name": "a", "price": 1.0}
    assert client.get("/items/from-dict").json() == {"name": "d", "price": 2.0}
    assert client.get("/items/list").json() == [{"name": "a", "price": 1.0}, {"name": "b", "price": 2.0}]


def test_response_model_violation_is_a_server_error() -> None:
    app = make_app()
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/items/bad-output")
        assert r.status_code == 500
        assert r.json() == {"detail": "Internal Server Error"}
    with TestClient(app) as c, pytest.raises(ResponseValidationError):
        c.get("/items/bad-output")


def test_optional_body(client: TestClient) -> None:
    assert client.post("/optional").json() == {"got": False}
    assert client.post("/optional", json={"name": "a", "price": 1}).json() == {"got": True}


def test_embedded_and_multiple_bodies(client: TestClient) -> None:
    assert client.post("/embed", json={"item": {"name": "e", "price": 1}}).json() == {"name": "e"}
    assert client.post("/embed", json={"name": "e", "price": 1}).json()["detail"][0]["loc"] == ["body", "item"]
    r = client.post("/multi", json={"item": {"name": "i", "price": 1}, "user": {"username": "u"}, "importance": 5})
    assert r.json() == {"item": "i", "user": "u", "importance": 5}
    r = client.post("/multi", json={"item": {"name": "i"}, "user": {}, "importance": 0})
    assert [e["loc"] for e in r.json()["detail"]] == [
        ["body", "item", "price"],
        ["body", "user", "username"],
        ["body", "importance"],
    ]


def test_msgspec_struct(client: TestClient) -> None:
    assert client.post("/struct", json={"x": 2, "y": 3}).json() == {"x": 4, "y": 6}
    r = client.post("/struct", json={"x": "nope"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "x"]
    r = client.post("/struct", json={"y": 1})
    assert r.json()["detail"] == [{"type": "missing", "loc": ["body", "x"], "msg": "Field required", "input": None}]


def test_dataclass_and_typeddict(client: TestClient) -> None:
    assert client.post("/dataclass", json={"title": "t"}).json() == {"title": "T", "stars": 1}
    assert client.post("/dataclass", json={"stars": 1}).json()["detail"][0]["loc"] == ["body", "title"]
    assert client.post("/typeddict", json={"title": "m", "year": 1999}).json() == {"title": "m", "next": 2000}
    assert client.post("/typeddict", json={"title": "m", "year": "x"}).status_code == 422


def test_plain_dict_body_and_nested_models_in_return(client: TestClient) -> None:
    assert client.post("/dict", json={"b": 1, "a": 2}).json() == {"keys": ["a", "b"]}
    assert client.post("/dict", json=[1]).status_code == 422
    assert client.get("/nested-models").json() == {
        "items": [{"name": "a", "price": 1.0, "tags": []}],
        "point": {"x": 1, "y": 0},
        "note": {"title": "n", "stars": 0},
    }


def test_async_handler_with_body(client: TestClient) -> None:
    assert client.post("/async-body", json={"name": "a", "price": 1}).json() == {"name": "a", "price": 1.0, "tags": []}
    assert client.post("/async-body", json={"name": "a"}).status_code == 422


def test_response_objects_pass_through(client: TestClient) -> None:
    r = client.get("/json-response")
    assert r.status_code == 202 and r.json() == {"custom": True}
