"""OpenAPI 3.1 from routes, parameters, models and responses; the offline docs page."""

import re
from typing import Annotated

from openapi_spec_validator import validate
from pydantic import BaseModel, Field

from catzilla import Body, Catzilla, Depends, Form, Header, Path, Query, RouterGroup
from catzilla.testing import TestClient


class Item(BaseModel):
    name: str = Field(description="What it is called")
    price: float = Field(gt=0)


class Message(BaseModel):
    detail: str


def make_app(**kwargs) -> Catzilla:
    app = Catzilla(auto_memory_tuning=False, title="Shop", version="2.1.0", description="Things for sale", **kwargs)
    group = RouterGroup("/items", tags=["items"])

    def auth(x_token: str = Header(description="API token")) -> str:
        return x_token

    @group.get("/{item_id}", response_model=Item, responses={404: {"model": Message, "description": "Missing"}})
    def read_item(
        item_id: Annotated[int, Path(ge=1, description="The item")],
        q: str | None = Query(None, max_length=9),
        tags: list[str] = Query([]),
        token: str = Depends(auth),
    ):
        """Read one item."""
        return Item(name="x", price=1)

    @group.post("", status_code=201, summary="Create an item")
    def create_item(item: Item) -> Item:
        return item

    @group.put("/{item_id}")
    def replace(item_id: int, item: Item, note: str = Body(), urgent: bool = Body(False)):
        return {}

    @app.post("/login")
    def login(username: str = Form(), password: str = Form(min_length=8)):
        return {}

    @app.delete("/items/{item_id}", status_code=204, deprecated=True)
    def delete(item_id: int) -> None:
        return None

    @app.get("/hidden", include_in_schema=False)
    def hidden():
        return {}

    @app.get("/plain")
    def plain():
        return {"hello": "world"}

    app.include_routes(group)
    return app


def test_openapi_document_is_valid_3_1_and_complete() -> None:
    app = make_app()
    with TestClient(app) as c:
        r = c.get("/openapi.json")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        doc = r.json()
    validate(doc)  # OpenAPI 3.1 schema validation
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "Shop", "version": "2.1.0", "description": "Things for sale"}
    assert set(doc["paths"]) == {"/items/{item_id}", "/items", "/login", "/plain"}

    get = doc["paths"]["/items/{item_id}"]["get"]
    assert get["tags"] == ["items"] and get["summary"] == "Read Item" and get["description"] == "Read one item."
    assert get["operationId"] == "read_item_items__item_id__get"
    params = {(p["in"], p["name"]): p for p in get["parameters"]}
    assert params[("path", "item_id")]["required"] is True
    assert params[("path", "item_id")]["schema"] == {"type": "integer", "minimum": 1, "title": "Item Id"}
    assert params[("path", "item_id")]["description"] == "The item"
    assert params[("query", "q")]["required"] is False
    assert params[("query", "q")]["schema"]["anyOf"] == [{"type": "string", "maxLength": 9}, {"type": "null"}]
    assert params[("query", "tags")]["schema"]["type"] == "array"
    assert params[("header", "x-token")]["required"] is True  # from the dependency
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    assert get["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Message"}
    assert get["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }

    post = doc["paths"]["/items"]["post"]
    assert post["summary"] == "Create an item"
    assert post["requestBody"] == {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}},
        "required": True,
    }
    assert set(post["responses"]) == {"201", "422"}

    put = doc["paths"]["/items/{item_id}"]["put"]
    body_ref = put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    embedded = doc["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(embedded["properties"]) == {"item", "note", "urgent"} and embedded["required"] == ["item", "note"]

    login = doc["paths"]["/login"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in login

    delete = doc["paths"]["/items/{item_id}"]["delete"]
    assert delete["deprecated"] is True and "content" not in delete["responses"]["204"]

    schemas = doc["components"]["schemas"]
    assert schemas["Item"]["properties"]["price"]["exclusiveMinimum"] == 0
    assert schemas["Item"]["properties"]["name"]["description"] == "What it is called"
    assert {"ValidationError", "HTTPValidationError", "Message"} <= set(schemas)
    assert "422" not in doc["paths"]["/plain"]["get"]["responses"]
    assert app.openapi() is app.openapi()  # built once


def test_msgspec_and_dataclass_models_in_schema() -> None:
    import dataclasses

    import msgspec

    class Point(msgspec.Struct):
        x: int
        y: int

    @dataclasses.dataclass
    class Note:
        title: str

    app2 = Catzilla(auto_memory_tuning=False)

    def points(p: Point) -> Point:
        return p

    def notes(n: Note) -> list[Note]:
        return [n]

    app2.post("/points")(points)
    app2.post("/notes")(notes)
    doc = app2.openapi()
    validate(doc)
    assert doc["components"]["schemas"]["Point"]["required"] == ["x", "y"]
    assert doc["paths"]["/notes"]["post"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Note"},
    }


def test_docs_page_is_served_offline() -> None:
    app = make_app()
    with TestClient(app) as c:
        page = c.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "/openapi.json" in html and "SwaggerUIBundle" in html
        assert not re.search(r"(src|href)=\"(https?:)?//", html), "no asset may come from another host"
        for src in re.findall(r"(?:src|href)=\"([^\"]+)\"", html):
            asset = c.get(src)
            assert asset.status_code == 200, src
            assert len(asset.content) > 500
        js = c.get("/docs/assets/swagger-ui-bundle.js")
        assert "javascript" in js.headers["content-type"]
        assert c.get("/docs/assets/../../etc/passwd").status_code == 404
        assert c.get("/docs/assets/index.j2").status_code == 404


def test_docs_url_none_turns_off_the_page_only() -> None:
    # as in FastAPI: docs_url=None keeps /openapi.json; openapi_url=None turns all off
    app = make_app(docs_url=None)
    with TestClient(app) as c:
        assert c.get("/docs").status_code == 404
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/redoc").status_code == 200
        assert c.get("/plain").json() == {"hello": "world"}
    app = make_app(openapi_url=None)
    with TestClient(app) as c:
        assert c.get("/docs").status_code == 404
        assert c.get("/redoc").status_code == 404
        assert c.get("/openapi.json").status_code == 404


def test_docs_routes_are_not_user_routes_and_user_routes_win() -> None:
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/docs")
    def my_docs():
        return {"mine": True}

    with TestClient(app) as c:
        assert c.get("/docs").json() == {"mine": True}
    assert [r.path for r in app.routes] == ["/docs"]
