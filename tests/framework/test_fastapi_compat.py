"""What a FastAPI app ported by changing its imports relies on (docs/compat.md):
each test names the item of the compatibility work it covers."""

import base64
import enum
import threading
import time
import warnings
from typing import Annotated

import pytest

from catzilla import BackgroundTasks, Catzilla, Depends, HTTPException, Request, Security
from catzilla.testclient import TestClient


@pytest.fixture
def app():
    a = Catzilla(auto_memory_tuning=False)
    yield a
    a.close()


# -- TestClient ----------------------------------------------------------------------------------


def test_several_clients_of_one_app_without_closing(app: Catzilla) -> None:
    @app.get("/")
    def index():
        return {"ok": True}

    first = TestClient(app)
    second = TestClient(app)
    assert first.get("/").json() == second.get("/").json() == {"ok": True}
    with TestClient(app) as third:
        assert third.get("/").json() == {"ok": True}
    assert first.get("/").status_code == 200
    first.close()
    assert second.get("/").status_code == 200
    second.close()
    assert TestClient(app).get("/").status_code == 200


def test_background_tasks_have_run_when_the_call_returns(app: Catzilla) -> None:
    done: list[str] = []

    def slow(name: str) -> None:
        time.sleep(0.2)
        done.append(name)

    async def slow_async(name: str) -> None:
        done.append(name)

    @app.post("/send/{name}")
    def send(name: str, tasks: BackgroundTasks):
        tasks.add_task(slow, name)
        tasks.add_task(slow_async, name + "!")
        return {"queued": name}

    client = TestClient(app)
    assert client.post("/send/a").json() == {"queued": "a"}
    assert done == ["a", "a!"]


def test_testclient_presents_itself_as_starlettes(app: Catzilla) -> None:
    @app.get("/me")
    def me(request: Request):
        return {
            "ua": request.headers["user-agent"],
            "host": request.client.host if request.client else None,
            "url": str(request.url),
            "server": request.headers.get("server"),
        }

    client = TestClient(app)
    assert str(client.base_url) == "http://testserver"
    body = client.get("/me?x=1").json()
    assert body == {"ua": "testclient", "host": "testclient", "url": "http://testserver/me?x=1", "server": None}
    r = client.get("/me")
    assert r.headers["server"] == "catzilla"  # answered by the C server, over the socket
    assert client.port is not None


# -- dependency overrides --------------------------------------------------------------------


def test_dependency_overrides_reassigned_are_dropped(app: Catzilla) -> None:
    def common() -> str:
        return "real"

    @app.get("/")
    def index(value: Annotated[str, Depends(common)]):
        return {"value": value}

    client = TestClient(app)
    app.dependency_overrides[common] = lambda: "fake"
    assert client.get("/").json() == {"value": "fake"}
    app.dependency_overrides = {}
    assert client.get("/").json() == {"value": "real"}
    app.dependency_overrides = {common: lambda: "again"}
    assert client.get("/").json() == {"value": "again"}
    app.dependency_overrides = None  # type: ignore[assignment]
    assert client.get("/").json() == {"value": "real"}


# -- OpenAPI ------------------------------------------------------------------------------------------


class Tags(enum.Enum):
    items = "items"
    users = "users"


def test_enum_tags_and_app_metadata(app: Catzilla) -> None:
    app = Catzilla(
        auto_memory_tuning=False,
        title="T",
        summary="S",
        terms_of_service="http://x/terms",
        contact={"name": "me"},
        license_info={"name": "MIT"},
        root_path="/api/v1",
    )

    @app.get("/items", tags=[Tags.items])
    def items():
        return []

    client = TestClient(app)
    doc = client.get("/openapi.json").json()
    assert doc["paths"]["/items"]["get"]["tags"] == ["items"]
    assert doc["info"] == {
        "title": "T",
        "summary": "S",
        "termsOfService": "http://x/terms",
        "contact": {"name": "me"},
        "license": {"name": "MIT"},
        "version": "0.1.0",
    }
    assert doc["servers"] == [{"url": "/api/v1"}]
    assert client.get("/redoc").status_code == 200
    app.close()


def test_on_event_is_deprecated(app: Catzilla) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        @app.on_event("startup")
        def start() -> None:
            pass

    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


# -- security --------------------------------------------------------------------------------------------


def test_oauth2_password_bearer_and_form(app: Catzilla) -> None:
    from catzilla.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm

    oauth2 = OAuth2PasswordBearer(tokenUrl="token")

    @app.post("/token")
    def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]):
        return {"access_token": form.username, "scopes": form.scopes}

    @app.get("/me")
    def me(token: Annotated[str, Depends(oauth2)]):
        return {"token": token}

    client = TestClient(app)
    r = client.post("/token", data={"username": "ann", "password": "pw", "scope": "a b"})
    assert r.json() == {"access_token": "ann", "scopes": ["a", "b"]}
    r = client.get("/me")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"detail": "Not authenticated"}
    assert client.get("/me", headers={"Authorization": "Bearer abc"}).json() == {"token": "abc"}
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"] == {
        "OAuth2PasswordBearer": {"type": "oauth2", "flows": {"password": {"scopes": {}, "tokenUrl": "token"}}}
    }
    assert doc["paths"]["/me"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    assert "security" not in doc["paths"]["/token"]["post"]


def test_http_basic_bearer_and_api_keys(app: Catzilla) -> None:
    from catzilla.security import (
        APIKeyCookie,
        APIKeyHeader,
        APIKeyQuery,
        HTTPAuthorizationCredentials,
        HTTPBasic,
        HTTPBasicCredentials,
        HTTPBearer,
    )

    basic, bearer = HTTPBasic(realm="r"), HTTPBearer(auto_error=False)
    key_h, key_q, key_c = APIKeyHeader(name="x-key"), APIKeyQuery(name="key"), APIKeyCookie(name="k")

    @app.get("/basic")
    def b(c: Annotated[HTTPBasicCredentials, Depends(basic)]):
        return [c.username, c.password]

    @app.get("/bearer")
    def t(c: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]):
        return None if c is None else [c.scheme, c.credentials]

    @app.get("/keys")
    def k(h: Annotated[str, Depends(key_h)], q: Annotated[str, Depends(key_q)], c: Annotated[str, Depends(key_c)]):
        return [h, q, c]

    client = TestClient(app)
    auth = "Basic " + base64.b64encode(b"ann:secret").decode()
    assert client.get("/basic", headers={"Authorization": auth}).json() == ["ann", "secret"]
    r = client.get("/basic")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="r"'
    assert client.get("/bearer").json() is None
    assert client.get("/bearer", headers={"Authorization": "Bearer x"}).json() == ["Bearer", "x"]
    r = client.get("/keys", params={"key": "q"}, headers={"x-key": "h"}, cookies={"k": "c"})
    assert r.json() == ["h", "q", "c"]
    r = client.get("/keys")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "APIKey"
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBasic"] == {"type": "http", "scheme": "basic"}
    assert schemes["APIKeyHeader"] == {"type": "apiKey", "in": "header", "name": "x-key"}


def test_security_scopes_follow_the_security_chain(app: Catzilla) -> None:
    from catzilla.security import OAuth2PasswordBearer, SecurityScopes

    oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"me": "Read me", "items": "Read items"})

    def current_user(scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> dict:
        if "items" in scopes.scopes and token != "full":
            raise HTTPException(401, "Not enough permissions", headers={"WWW-Authenticate": scopes.scope_str})
        return {"scopes": scopes.scopes, "token": token}

    @app.get("/me")
    def me(user: Annotated[dict, Security(current_user, scopes=["me"])]):
        return user

    @app.get("/items")
    def items(user: Annotated[dict, Security(current_user, scopes=["me", "items"])]):
        return user

    client = TestClient(app)
    token = {"Authorization": "Bearer t"}
    assert client.get("/me", headers=token).json() == {"scopes": ["me"], "token": "t"}
    r = client.get("/items", headers=token)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "me items"
    doc = client.get("/openapi.json").json()
    assert doc["paths"]["/items"]["get"]["security"] == [{"OAuth2PasswordBearer": ["me", "items"]}]


def test_exception_handlers_module(app: Catzilla) -> None:
    from catzilla.exception_handlers import http_exception_handler, request_validation_exception_handler
    from catzilla.exceptions import RequestValidationError

    seen: list[str] = []

    @app.exception_handler(HTTPException)
    async def on_http(request, exc):
        seen.append("http")
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request, exc):
        seen.append("invalid")
        return await request_validation_exception_handler(request, exc)

    @app.get("/items/{item_id}")
    def item(item_id: int):
        if item_id == 3:
            raise HTTPException(418, "Nope")
        return {"id": item_id}

    client = TestClient(app)
    assert client.get("/items/3").json() == {"detail": "Nope"}
    assert client.get("/items/x").status_code == 422
    assert seen == ["http", "invalid"]
    assert threading.active_count() >= 1


# -- parameter models --------------------------------------------------------------------------------


def test_query_header_cookie_parameter_models(app: Catzilla) -> None:
    from typing import Literal

    from pydantic import BaseModel, Field

    from catzilla import Cookie, Header, Query

    class FilterParams(BaseModel):
        model_config = {"extra": "forbid"}
        limit: int = Field(100, gt=0, le=100)
        order_by: Literal["created_at", "updated_at"] = "created_at"
        tags: list[str] = []

    class CommonHeaders(BaseModel):
        save_data: bool
        x_tag: list[str] = []

    class Prefs(BaseModel):
        theme: str

    @app.get("/items")
    def items(f: Annotated[FilterParams, Query()]):
        return f

    @app.get("/headers")
    def headers(h: Annotated[CommonHeaders, Header()]):
        return h

    @app.get("/prefs")
    def prefs(p: Annotated[Prefs | None, Cookie()] = None):
        return p

    client = TestClient(app)
    r = client.get("/items?limit=5&tags=a&tags=b")
    assert r.json() == {"limit": 5, "order_by": "created_at", "tags": ["a", "b"]}
    r = client.get("/items?limit=0&tool=x")
    assert r.status_code == 422
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
        ("greater_than", ["query", "limit"]),
        ("extra_forbidden", ["query", "tool"]),
    ]
    r = client.get("/headers", headers=[("save-data", "yes"), ("x-tag", "1"), ("x-tag", "2")])
    assert r.json() == {"save_data": True, "x_tag": ["1", "2"]}
    r = client.get("/headers")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["header", "save-data"]
    assert client.get("/prefs").json() is None
    assert client.get("/prefs", cookies={"theme": "dark"}).json() == {"theme": "dark"}
    params = client.get("/openapi.json").json()["paths"]["/items"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in params] == [
        ("limit", "query", False),
        ("order_by", "query", False),
        ("tags", "query", False),
    ]


def test_openapi_leaves_null_defaults_out(app: Catzilla) -> None:
    from pydantic import BaseModel

    from catzilla import Header

    class Item(BaseModel):
        name: str
        tax: float | None = None

    @app.post("/items")
    def create(item: Item, q: str | None = None, x_token: Annotated[str | None, Header()] = None):
        return item

    doc = TestClient(app).get("/openapi.json").json()
    assert doc["components"]["schemas"]["Item"]["properties"]["tax"] == {
        "anyOf": [{"type": "number"}, {"type": "null"}],
        "title": "Tax",
    }
    params = doc["paths"]["/items"]["post"]["parameters"]
    assert "default" not in params[0]["schema"]
    assert params[1]["name"] == "x-token" and params[1]["schema"]["title"] == "X-Token"


# -- dependencies with yield, groups, route options ------------------------------------------------


def test_a_dependency_that_swallows_the_handlers_exception_is_an_error(app: Catzilla) -> None:
    from catzilla.exceptions import CatzillaError

    def quiet():
        try:
            yield "x"
        except KeyError:
            return  # swallowed

    @app.get("/boom")
    def boom(v: Annotated[str, Depends(quiet, scope="function")]):
        raise KeyError(v)

    with pytest.raises(CatzillaError, match="dependency with yield caught it"):
        TestClient(app).get("/boom")
    assert TestClient(app, raise_server_exceptions=False).get("/boom").status_code == 500


def test_include_routes_options_and_response_model_include_exclude(app: Catzilla) -> None:
    from pydantic import BaseModel

    from catzilla import APIRouter

    class Item(BaseModel):
        name: str
        price: float
        tax: float = 0

    calls: list[str] = []

    def token() -> None:
        calls.append("token")

    router = APIRouter(prefix="/items", tags=["items"])

    @router.get("/{name}", response_model=Item, response_model_include={"name", "price"})
    def read(name: str):
        return {"name": name, "price": 1.5, "tax": 0.1}

    @router.get("/{name}/public", response_model=Item, response_model_exclude={"tax"}, openapi_extra={"x-a": 1})
    def public(name: str):
        return Item(name=name, price=2, tax=3)

    app.include_router(
        router, prefix="/v1", dependencies=[Depends(token)], responses={418: {"description": "Teapot"}}, tags=["v1"]
    )
    client = TestClient(app)
    assert client.get("/v1/items/a").json() == {"name": "a", "price": 1.5}
    assert client.get("/v1/items/b/public").json() == {"name": "b", "price": 2.0}
    assert calls == ["token", "token"]
    op = client.get("/openapi.json").json()["paths"]["/v1/items/{name}/public"]["get"]
    assert op["tags"] == ["v1", "items"] and op["x-a"] == 1
    assert op["responses"]["418"] == {"description": "Teapot"}


def test_https_redirect_and_trusted_host_middleware(app: Catzilla) -> None:
    from catzilla.middleware.httpsredirect import HTTPSRedirectMiddleware
    from catzilla.middleware.trustedhost import TrustedHostMiddleware

    @app.get("/")
    def index(request: Request):
        return {"scheme": request.url.scheme, "root_path": request.scope["root_path"]}

    app.add_middleware(HTTPSRedirectMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com", "*.example.com"])
    r = TestClient(app, base_url="http://example.com").get("/?a=1", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "https://example.com/?a=1"
    assert TestClient(app, base_url="https://api.example.com").get("/").json() == {"scheme": "https", "root_path": ""}
    r = TestClient(app, base_url="https://evil.test").get("/")
    assert r.status_code == 400 and r.text == "Invalid host header"


def test_get_openapi_and_docs_pages() -> None:
    from catzilla.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from catzilla.openapi.utils import get_openapi

    app = Catzilla(auto_memory_tuning=False)

    @app.get("/items")
    def items():
        return []

    def custom():
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title="Custom", version="2.5.0", summary="S", routes=app.routes)
        doc["info"]["x-logo"] = {"url": "logo.png"}
        app.openapi_schema = doc
        return doc

    app.openapi = custom  # type: ignore[method-assign]
    doc = TestClient(app).get("/openapi.json").json()
    assert doc["info"] == {"title": "Custom", "summary": "S", "version": "2.5.0", "x-logo": {"url": "logo.png"}}
    assert "/items" in doc["paths"]
    page = get_swagger_ui_html(openapi_url="/o.json", title="T", swagger_js_url="/s.js", swagger_css_url="/s.css")
    assert b"/s.js" in page.body and b'"/o.json"' in page.body
    assert b"/r.js" in get_redoc_html(openapi_url="/o.json", title="T", redoc_js_url="/r.js").body
    assert b"swaggerUIRedirectOauth2" in get_swagger_ui_oauth2_redirect_html().body
    app.close()


# -- error details, response classes ------------------------------------------------------------------


def test_validation_errors_have_fastapis_shapes(app: Catzilla) -> None:
    from pydantic import BaseModel

    from catzilla import Body
    from catzilla.exceptions import RequestValidationError
    from catzilla.responses import JSONResponse

    class Image(BaseModel):
        url: str

    class Item(BaseModel):
        name: str
        images: list[Image] | None = None

    seen: list[RequestValidationError] = []

    @app.exception_handler(RequestValidationError)
    def on_invalid(request, exc: RequestValidationError):
        seen.append(exc)
        return JSONResponse({"detail": exc.errors()}, status_code=422)

    @app.post("/items")
    def create(item: Item):
        return item

    @app.put("/both")
    def both(item: Item, importance: Annotated[int, Body()]):
        return {}

    client = TestClient(app)
    r = client.post("/items", content="{some broken json}", headers={"content-type": "application/json"})
    assert r.json()["detail"] == [
        {
            "type": "json_invalid",
            "loc": ["body", 1],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "Expecting property name enclosed in double quotes"},
        }
    ]
    r = client.post("/items", json={"name": "x", "images": {"url": "u"}})
    assert r.json()["detail"] == [
        {"type": "list_type", "loc": ["body", "images"], "msg": "Input should be a valid list", "input": {"url": "u"}}
    ]
    assert seen[-1].errors()[0]["loc"] == ("body", "images")
    assert seen[-1].body == {"name": "x", "images": {"url": "u"}}
    r = client.put("/both", json=[])
    assert [(e["type"], e["loc"], e["input"]) for e in r.json()["detail"]] == [
        ("missing", ["body", "item"], None),
        ("missing", ["body", "importance"], None),
    ]


def test_response_classes(app: Catzilla) -> None:
    from catzilla.responses import HTMLResponse, ORJSONResponse, RedirectResponse, UJSONResponse

    other = Catzilla(auto_memory_tuning=False, default_response_class=HTMLResponse)

    @other.get("/page")
    def page():
        return "<p>hi</p>"

    @app.get("/go", response_class=RedirectResponse)
    def go():
        return "https://example.com/"

    @app.get("/go301", response_class=RedirectResponse, status_code=301)
    def go301():
        return "https://example.com/"

    @app.get("/or", response_class=ORJSONResponse)
    def orj():
        return {"a": [1, 2]}

    @app.get("/uj", response_class=UJSONResponse)
    def uj():
        return {"a": "é"}

    client = TestClient(app, follow_redirects=False)
    r = client.get("/go")
    assert r.status_code == 307 and r.headers["location"] == "https://example.com/"
    assert client.get("/go301").status_code == 301
    assert client.get("/or").json() == {"a": [1, 2]}
    assert client.get("/uj").json() == {"a": "é"}
    r = TestClient(other).get("/page")
    assert r.headers["content-type"].startswith("text/html") and r.text == "<p>hi</p>"
    other.close()


def test_strict_content_type_and_root_path() -> None:
    from pydantic import BaseModel

    class Item(BaseModel):
        name: str

    for strict, status in ((False, 200), (True, 422)):
        app = Catzilla(auto_memory_tuning=False, strict_content_type=strict)

        @app.post("/items")
        def create(item: Item):
            return item

        @app.get("/root")
        def root(request: Request):
            return {"root_path": request.scope.get("root_path")}

        client = TestClient(app, root_path="/api/v1")
        assert client.post("/items", content=b'{"name": "a"}').status_code == status
        assert client.post("/items", json={"name": "a"}).status_code == 200
        assert client.get("/root").json() == {"root_path": "/api/v1"}
        assert client.get("/openapi.json").json()["servers"] == [{"url": "/api/v1"}]
        app.close()


# -- conversions and validators: pydantic's lax mode -----------------------------------------------------

CONVERSIONS = {
    "int": ["1", "-3", "+1", "1.0", "\u0663", " 1 ", "1_000", "1e3", "0x1", "1.5", "007"],
    "float": ["1", "1.5", "-1e3", "inf", "nan", "1.", ".5", "0x1p3", " 2 ", "abc"],
    "date": ["2024-01-01", "20240101", "1700000000", "2024-01-01T00:00:00", "2024-1-1", "2024-02-30"],
    "datetime": ["2024-01-01T10:00:00", "2024-01-01 10:00:00", "1700000000", "2024-01-01", "2024-01-01T10:00:00z"],
    "time": ["10:00:00", "10:00", "1000", "25:00:00"],
    "uuid": ["12345678-1234-5678-1234-567812345678", "12345678123456781234567812345678", "x"],
    "decimal": ["1.5", "NaN", " 1 ", "1e3", "x"],
}


@pytest.mark.parametrize("kind", sorted(CONVERSIONS))
def test_query_conversions_are_pydantics_lax_mode(kind: str) -> None:
    import datetime as dt
    import decimal
    import math
    import uuid

    import pydantic

    tp = {"int": int, "float": float, "date": dt.date, "datetime": dt.datetime, "time": dt.time}.get(kind) or {
        "uuid": uuid.UUID,
        "decimal": decimal.Decimal,
    }[kind]
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/direct")
    def direct(v: tp):  # type: ignore[valid-type]
        return {"v": str(v)}

    @app.get("/binder")
    def binder(v: tp, request: Request):  # type: ignore[valid-type]
        return {"v": str(v)}

    client = TestClient(app)
    adapter = pydantic.TypeAdapter(tp)
    for text in CONVERSIONS[kind]:
        try:
            want = ("ok", str(adapter.validate_python(text)))
        except pydantic.ValidationError as exc:
            want = ("error", exc.errors()[0]["type"])
        for path in ("/direct", "/binder"):
            r = client.get(path, params={"v": text})
            got = ("ok", r.json()["v"]) if r.status_code == 200 else ("error", r.json()["detail"][0]["type"])
            if want[0] == got[0] == "ok" and kind in ("float", "decimal") and want[1].lower() == "nan":
                assert math.isnan(float(got[1]))
                continue
            assert got == want, (path, text)
    app.close()


def test_annotated_pydantic_validators_on_parameters(app: Catzilla) -> None:
    from pydantic import AfterValidator, Field

    def check(value: str) -> str:
        if not value.startswith(("isbn-", "imdb-")):
            raise ValueError("Invalid ID format")
        return value

    @app.get("/items")
    def items(
        id: Annotated[str | None, AfterValidator(check)] = None,
        n: Annotated[int, Field(gt=2)] = 5,
    ):
        return {"id": id, "n": n}

    client = TestClient(app)
    assert client.get("/items?id=isbn-1&n=3").json() == {"id": "isbn-1", "n": 3}
    assert client.get("/items").json() == {"id": None, "n": 5}
    r = client.get("/items?id=wtf&n=1")
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "type": "value_error",
            "loc": ["query", "id"],
            "msg": "Value error, Invalid ID format",
            "input": "wtf",
            "ctx": {"error": {}},
        },
        {"type": "greater_than", "loc": ["query", "n"], "msg": "Input should be greater than 2", "input": "1",
         "ctx": {"gt": 2}},
    ]  # fmt: skip


def test_jinja2_templates(app: Catzilla, tmp_path) -> None:
    from catzilla.responses import HTMLResponse
    from catzilla.templating import Jinja2Templates

    (tmp_path / "item.html").write_text("<a href=\"{{ url_for('item', id=id) }}\">{{ id }}</a>")
    templates = Jinja2Templates(directory=str(tmp_path))

    @app.get("/items/{id}", response_class=HTMLResponse, name="item")
    def item(request: Request, id: str):
        return templates.TemplateResponse(request=request, name="item.html", context={"id": id})

    r = TestClient(app).get("/items/7")
    assert r.text == '<a href="http://testserver/items/7">7</a>'


def test_swagger_ui_parameters_and_oauth2_redirect_url() -> None:
    pytest.importorskip("swagger_ui_bundle")
    app = Catzilla(auto_memory_tuning=False, swagger_ui_parameters={"deepLinking": False, "syntaxHighlight": False})
    page = TestClient(app).get("/docs").text
    assert '"deepLinking": false,' in page and '"syntaxHighlight": false,' in page
    assert '"dom_id": "#swagger-ui",' in page and "SwaggerUIBundle.presets.apis," in page
    assert app.swagger_ui_oauth2_redirect_url == "/docs/oauth2-redirect"
    app.close()


def test_generate_unique_id_function() -> None:
    app = Catzilla(auto_memory_tuning=False, generate_unique_id_function=lambda route: f"{route.tags[0]}-{route.name}")

    @app.get("/items", tags=["items"])
    def read_items():
        return []

    @app.get("/other", tags=["x"], operation_id="given")
    def other():
        return []

    paths = TestClient(app).get("/openapi.json").json()["paths"]
    assert paths["/items"]["get"]["operationId"] == "items-read_items"
    assert paths["/other"]["get"]["operationId"] == "given"
    app.close()


# -- return values, body limits, strict Content-Type -----------------------------------------------------


def test_a_returned_str_is_json_with_a_status_code_or_an_injected_response(app: Catzilla) -> None:
    from catzilla import Response

    @app.post("/created", status_code=201)
    def created():
        return "made"

    @app.put("/tasks/{name}")
    def task(name: str, response: Response):
        if name == "new":
            response.status_code = 201
        return f"task {name}"

    client = TestClient(app)
    for url, status, text in (
        ("/created", 201, "made"),
        ("/tasks/new", 201, "task new"),
        ("/tasks/old", 200, "task old"),
    ):
        r = client.post(url) if url == "/created" else client.put(url)
        assert r.status_code == status
        assert r.headers["content-type"] == "application/json"
        assert r.json() == text


def test_a_response_class_in_a_return_union_is_no_response_model(app: Catzilla) -> None:
    from catzilla import Response
    from catzilla.exceptions import CatzillaError
    from catzilla.responses import RedirectResponse

    def portal(teleport: bool = False) -> Response | dict:
        if teleport:
            return RedirectResponse(url="https://example.com/")
        return {"message": "portal"}

    with pytest.raises(CatzillaError, match="response_model=None"):
        app.get("/portal")(portal)
    app.get("/portal", response_model=None)(portal)  # FastAPI's way out: no model, values as they are
    client = TestClient(app, follow_redirects=False)
    assert client.get("/portal").json() == {"message": "portal"}
    r = client.get("/portal?teleport=1")
    assert r.status_code == 307 and r.headers["location"] == "https://example.com/"


def test_router_group_max_body_size() -> None:
    from catzilla import RouterGroup

    app = Catzilla(auto_memory_tuning=False, max_body_size=1000)
    uploads = RouterGroup(prefix="/uploads", max_body_size=10_000)

    @app.post("/items")
    def items(item: dict):
        return {"n": len(item["x"])}

    @uploads.post("/")
    def upload(item: dict):
        return {"n": len(item["x"])}

    @uploads.post("/small", max_body_size=3000)  # the route's own limit wins over its group's
    def small(item: dict):
        return {"n": len(item["x"])}

    app.include_routes(uploads)
    client = TestClient(app)
    assert client.post("/items", json={"x": "a" * 500}).json() == {"n": 500}
    assert client.post("/items", json={"x": "a" * 2000}).status_code == 413
    assert client.post("/uploads/", json={"x": "a" * 5000}).json() == {"n": 5000}
    assert client.post("/uploads/", json={"x": "a" * 20_000}).status_code == 413
    assert client.post("/uploads/small", json={"x": "a" * 2000}).json() == {"n": 2000}
    assert client.post("/uploads/small", json={"x": "a" * 5000}).status_code == 413
    app.close()


def test_strict_content_type_is_the_default_on_the_direct_path(app: Catzilla) -> None:
    from pydantic import BaseModel

    from catzilla.params import MODE_DIRECT

    class Item(BaseModel):
        name: str

    @app.post("/items")
    def create(item: Item, q: int = 0):
        return {"name": item.name, "q": q}

    assert {r.path: t[0] for r, t, _ in app._endpoints}["/items"] == MODE_DIRECT  # the C core takes the body
    client = TestClient(app)
    body = b'{"name": "a"}'
    assert client.post("/items?q=1", content=body, headers={"content-type": "application/json"}).json() == {
        "name": "a",
        "q": 1,
    }
    r = client.post("/items?q=1", content=body)  # no Content-Type: not JSON
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": '{"name": "a"}',
        }
    ]
    lenient = Catzilla(auto_memory_tuning=False, strict_content_type=False)
    lenient.post("/items")(create)
    client = TestClient(lenient)
    assert client.post("/items", content=body).json() == {"name": "a", "q": 0}
    assert client.post("/items", content=body, headers={"content-type": ""}).json() == {"name": "a", "q": 0}
    assert client.post("/items", content=body, headers={"content-type": "text/plain"}).status_code == 422
    lenient.close()


def test_a_body_the_json_parser_fails_on_is_400(app: Catzilla) -> None:
    from unittest.mock import patch

    from pydantic import BaseModel

    class Item(BaseModel):
        name: str

    @app.post("/items")
    def create(item: Item):
        return item

    client = TestClient(app)
    with patch("json.loads", side_effect=RuntimeError("parser broke")):
        r = client.post("/items", json={"other": 1})
    assert r.status_code == 400 and r.json() == {"detail": "There was an error parsing the body"}
    assert client.post("/items", json={"other": 1}).status_code == 422
