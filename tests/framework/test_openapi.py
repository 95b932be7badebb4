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
    assert params[("path", "item_id")]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "title": "Item Id",
        "description": "The item",  # in the schema too, as pydantic writes a field's
    }
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
        "title": "Response Notes Notes Post",
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


def test_openapi_details_as_fastapi_writes_them() -> None:
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/files/{file_path:path}")
    def read_file(file_path: str):
        return file_path

    @app.get("/items/{item_id}")
    def read_items(
        x_key: Annotated[str, Header()],
        q: Annotated[str | None, Query(description="Search", deprecated=True)] = None,
        *,
        item_id: int,
        raw: Annotated[list, Query()] = [],  # noqa: B006
        hidden: Annotated[str | None, Query(include_in_schema=False)] = None,
    ) -> list[Item]:
        return []

    @app.get("/untyped/{thing}")
    def untyped(thing):
        return thing

    @app.get("/hidden")
    def only_hidden(h: Annotated[str | None, Query(include_in_schema=False)] = None):
        return h

    @app.put("/maybe")
    def maybe(item: Item | None = None):
        return item

    @app.post("/form")
    def form(secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None):
        return secret

    doc = app.openapi()
    validate(doc)
    paths = doc["paths"]
    assert paths["/files/{file_path}"]["get"]["operationId"] == "read_file_files__file_path__get"
    get = paths["/items/{item_id}"]["get"]
    assert [(p["in"], p["name"]) for p in get["parameters"]] == [
        ("path", "item_id"),
        ("query", "q"),
        ("query", "raw"),
        ("header", "x-key"),
    ]  # path, query, header, cookie: FastAPI's order, whatever the signature's
    q = get["parameters"][1]
    assert q["description"] == "Search" and q["deprecated"] is True
    assert q["schema"]["description"] == "Search" and q["schema"]["deprecated"] is True
    assert get["parameters"][2]["schema"] == {"type": "array", "items": {}, "title": "Raw", "default": []}
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Item"},
        "title": "Response Read Items Items  Item Id  Get",
    }
    assert paths["/untyped/{thing}"]["get"]["parameters"][0]["schema"] == {"title": "Thing"}
    hidden = paths["/hidden"]["get"]
    assert "parameters" not in hidden and "422" in hidden["responses"]  # a hidden parameter can still fail
    assert paths["/maybe"]["put"]["requestBody"] == {
        "content": {
            "application/json": {
                "schema": {"anyOf": [{"$ref": "#/components/schemas/Item"}, {"type": "null"}], "title": "Item"}
            }
        }
    }  # no "required": false
    secret = doc["components"]["schemas"]["Body_form_form_post"]["properties"]["secret"]
    assert secret["format"] == "password" and secret["anyOf"] == [{"type": "string"}, {"type": "null"}]


def test_openapi_additional_responses_enums_and_examples() -> None:
    import enum

    from catzilla.responses import RedirectResponse

    class ModelName(str, enum.Enum):
        alexnet = "alexnet"
        lenet = "lenet"

    app = Catzilla(auto_memory_tuning=False)

    @app.get(
        "/items/{item_id}",
        response_model=Item,
        responses={
            404: {"model": Message},
            200: {"content": {"image/png": {}}, "description": "The item or its picture"},
            "4XX": {"description": "Refused"},
        },
    )
    def read_item(item_id: int, model: ModelName = ModelName.lenet):
        return Item(name="x", price=1)

    @app.put("/items/{item_id}")
    def put_item(
        item_id: int,
        item: Annotated[Item, Body(openapi_examples={"normal": {"summary": "A normal one", "value": {"name": "a"}}})],
        q: Annotated[str | None, Query(openapi_examples={"short": {"value": "x"}})] = None,
    ):
        return item

    @app.get("/go", response_class=RedirectResponse)
    def go():
        return "https://example.com/"

    @app.post("/raw")
    def raw(data: dict):
        return data

    doc = app.openapi()
    validate(doc)
    responses = doc["paths"]["/items/{item_id}"]["get"]["responses"]
    assert responses["200"] == {
        "description": "The item or its picture",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}, "image/png": {}},
    }
    assert responses["404"] == {
        "description": "Not Found",  # the status phrase
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
    }
    assert responses["4XX"] == {"description": "Refused"}
    assert "422" not in responses  # 4XX covers it
    model = doc["paths"]["/items/{item_id}"]["get"]["parameters"][1]
    assert model["schema"] == {"$ref": "#/components/schemas/ModelName", "default": "lenet"}
    assert doc["components"]["schemas"]["ModelName"] == {
        "type": "string",
        "enum": ["alexnet", "lenet"],
        "title": "ModelName",
    }
    put = doc["paths"]["/items/{item_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"] == {
        "schema": {"$ref": "#/components/schemas/Item"},
        "examples": {"normal": {"summary": "A normal one", "value": {"name": "a"}}},
    }
    assert put["parameters"][1]["examples"] == {"short": {"value": "x"}}
    assert list(doc["paths"]["/go"]["get"]["responses"]) == ["307"]  # RedirectResponse's own status
    assert doc["paths"]["/raw"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object",
        "additionalProperties": True,
        "title": "Data",
    }


def test_webhooks_are_described_not_served() -> None:
    from catzilla.openapi.utils import get_openapi
    from catzilla.routing import APIRoute

    app = Catzilla(auto_memory_tuning=False)

    @app.webhooks.post("new-item", tags=["events"])
    def new_item(body: Item):
        """Sent when an item is added.
        \f
        Not in the document: after a form feed.
        """

    route = app.webhooks.routes[0]
    assert isinstance(route, APIRoute) and route.path == "new-item"
    doc = app.openapi()
    validate(doc)
    op = doc["webhooks"]["new-item"]["post"]
    assert op["operationId"] == "new_itemnew_item_post" and op["tags"] == ["events"]
    assert op["description"] == "Sent when an item is added."
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    assert doc["paths"] == {} and "Item" in doc["components"]["schemas"]
    assert TestClient(app).post("/new-item", json={"name": "a", "price": 1}).status_code == 404
    again = get_openapi(title="T", version="1", routes=app.routes, webhooks=app.webhooks.routes)
    assert again["webhooks"] == doc["webhooks"]
