"""Direct calls: the C core takes path, query, header and body values itself (catzilla.calling.plan).

The contract is that a direct route answers exactly as the compiled binder
would: each test sends the same requests to both twins (tests.framework.twins).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Optional

import pytest
from pydantic import BaseModel, Field

from catzilla import Catzilla, Header, HTTPException, Path, Query, Request, Response, _core
from catzilla.calling.plan import CallArg
from catzilla.params import MODE_DIRECT, MODE_REQUEST
from catzilla.testing import TestClient
from tests.framework.twins import same, twins


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float
    tags: list[str] = []
    note: Optional[str] = Field(None, alias="Note")


def test_scalars_and_constraints_answer_as_the_binder() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def search(
        item_id: int,
        q: str,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        ratio: float = Query(0.5, gt=0, lt=1),
        name: str = Query("x", min_length=2, max_length=4),
        flag: bool = False,
        color: Color = Color.red,
        opt: Optional[int] = None,
        page: int = Query(1, gt=0, lt=1000),
        big: int = Query(0, le=10**30),
        half: int = Query(1, ge=0.5),
    ) -> dict[str, Any]:
        return {
            "id": item_id,
            "q": q,
            "limit": limit,
            "ratio": ratio,
            "name": name,
            "flag": flag,
            "color": color.value,
            "opt": opt,
            "page": page,
            "big": big,
            "half": half,
        }

    twins(app, "GET", "/items/{item_id}", search)
    cases = [
        "/items/7?q=abc",
        "/items/7?q=abc&limit=5&ratio=0.25&name=abc&flag=true&color=blue&opt=3",
        "/items/-7?q=",
        "/items/+7?q=a",
        "/items/007?q=a",
        # what C leaves to the binder: encodings, other spellings, errors
        "/items/7?q=a%20b",
        "/items/7?q=a+b",
        "/items/7?%71=x",
        "/items/7?q=x&limit=1_0",
        "/items/7?q=x&limit=%205",
        "/items/7?q=x&ratio=1e-1",
        "/items/7?q=x&ratio=.5",
        "/items/7?q=x&ratio=nan",
        "/items/7?q=x&ratio=inf",
        "/items/1234567890123456789012?q=x",
        "/items/%37?q=x",
        "/items/x?q=a",
        # errors
        "/items/7",
        "/items/7?q=x&limit=0",
        "/items/7?q=x&limit=101",
        "/items/7?q=x&limit=abc",
        "/items/7?q=x&ratio=1",
        "/items/7?q=x&ratio=0",
        "/items/7?q=x&name=a",
        "/items/7?q=x&name=abcde",
        "/items/7?q=x&flag=maybe",
        "/items/7?q=x&color=green",
        "/items/7?q=x&opt=",
        "/items/7?limit=0&ratio=2",
        "/items/7?q=x&page=0",
        "/items/7?q=x&page=1",
        "/items/7?q=x&page=999",
        "/items/7?q=x&page=1000",
        "/items/7?q=x&limit=1&limit=100",
        "/items/7?q=x&big=999999999999999999",
        "/items/7?q=x&half=0",
        "/items/7?q=x&half=1",
        # repeated keys: the last one wins
        "/items/7?q=a&q=b&limit=3&limit=4",
        "/items/7?q=a&&limit=3&",
        "/items/7?q=a=b",
    ]
    with TestClient(app, raise_server_exceptions=False) as client:  # ratio=nan: 500 on both (not JSON)
        for url in cases:
            same(client, "GET", url)
        assert client.get("/d/items/7?q=abc&limit=5").json()["limit"] == 5
        assert client.get("/d/items/7?q=a%20b").json()["q"] == "a b"
        assert client.get("/d/items/7?q=a&q=b").json()["q"] == "b"
        r = client.get("/d/items/7?q=x&limit=0")
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["query", "limit"]
        assert r.json()["detail"][0]["type"] == "greater_than_equal"


def test_headers_are_case_insensitive_and_the_last_wins() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def h(x_token: str = Header(), x_count: int = Header(0), user_agent: str = Header("none")) -> dict[str, Any]:
        return {"token": x_token, "count": x_count, "ua": user_agent}

    twins(app, "GET", "/h", h)
    with TestClient(app) as client:
        r = same(client, "GET", "/h", headers={"X-Token": "abc", "X-COUNT": "3", "User-Agent": "t"})
        assert r.json() == {"token": "abc", "count": 3, "ua": "t"}
        same(client, "GET", "/h", headers={"x-count": "3"})  # missing required header: 422
        same(client, "GET", "/h", headers={"x-token": "t", "x-count": "three"})
        r = same(client, "GET", "/h", headers=[("x-token", "first"), ("X-Token", "last")])
        assert r.json()["token"] == "last"


def test_model_body_and_model_answer() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def create(item: Item, q: str, limit: int = Query(10, ge=1, le=100)) -> Item:
        return item

    twins(app, "POST", "/items", create)
    twins(app, "POST", "/created", create, status_code=201)
    twins(app, "POST", "/lean", create, response_model_exclude_none=True)
    body = b'{"name":"widget","price":9.5,"tags":["a","b"],"Note":"n"}'
    json_ct = {"content-type": "application/json"}
    with TestClient(app) as client:
        r = same(client, "POST", "/items?q=a&limit=5", content=body, headers=json_ct)
        assert r.json() == {"name": "widget", "price": 9.5, "tags": ["a", "b"], "Note": "n"}  # by alias
        assert r.headers["content-type"] == "application/json"
        assert same(client, "POST", "/created?q=a", content=body, headers=json_ct).status_code == 201
        r = same(client, "POST", "/lean?q=a", content=b'{"name":"w","price":1}', headers=json_ct)
        assert r.json() == {"name": "w", "price": 1.0, "tags": []}
        for bad in (b"", b"{", b"[]", b'{"name":"","price":1}', b'{"price":"x"}', '{"name":"é"'.encode()):
            r = same(client, "POST", "/items?q=a", content=bad, headers=json_ct)
            assert r.status_code == 422, bad
        r = same(client, "POST", "/items?q=a", content=b'{"price":1}', headers=json_ct)
        assert r.json()["detail"][0]["loc"] == ["body", "name"]
        same(client, "POST", "/items", content=body, headers=json_ct)  # missing q next to a valid body
        # no Content-Type: not JSON (strict_content_type, FastAPI's default), on both paths
        r = same(client, "POST", "/items?q=a", content=body)
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "model_attributes_type"
        assert same(client, "POST", "/items?q=a", content=b"").status_code == 422  # no body: missing


def test_other_return_values_take_the_finish_step() -> None:
    app = Catzilla(auto_memory_tuning=False, debug=True)  # 500 bodies name the exception

    def answer(kind: str) -> Item:
        if kind == "dict":
            return {"name": "d", "price": 1, "extra": "dropped"}  # type: ignore[return-value]
        if kind == "response":
            return Response(b"raw", media_type="text/plain", status_code=202)  # type: ignore[return-value]
        if kind == "invalid":
            return {"name": ""}  # type: ignore[return-value]
        if kind == "raise":
            raise HTTPException(418, "teapot")
        return Item(name="m", price=2)

    twins(app, "GET", "/a", answer)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert same(client, "GET", "/a?kind=model").json() == {"name": "m", "price": 2.0, "tags": [], "Note": None}
        assert same(client, "GET", "/a?kind=dict").json() == {"name": "d", "price": 1.0, "tags": [], "Note": None}
        r = same(client, "GET", "/a?kind=response")
        assert (r.status_code, r.content) == (202, b"raw")
        d, b = client.get("/d/a?kind=invalid"), client.get("/b/a?kind=invalid")
        assert d.status_code == b.status_code == 500
        assert d.json()["error"] == b.json()["error"]  # the same ResponseValidationError (tracebacks differ)
        assert same(client, "GET", "/a?kind=raise").json() == {"detail": "teapot"}


def test_async_handlers_and_plain_values() -> None:
    app = Catzilla(auto_memory_tuning=False)

    async def model(n: int) -> Item:
        return Item(name="a" * n, price=n)

    def plain(n: int = Path(ge=0)):
        return {"n": n} if n else None

    app.add_route("/model", model, ["GET"], status_code=201)
    app.add_route("/plain/{n}", plain, ["GET"])
    assert all(t[0] == MODE_DIRECT for _, t, _ in app._endpoints)
    with TestClient(app) as client:
        r = client.get("/model?n=2")
        assert (r.status_code, r.json()["name"]) == (201, "aa")
        assert client.get("/model?n=x").status_code == 422
        assert client.get("/plain/3").json() == {"n": 3}
        assert client.get("/plain/0").content == b"null"
        assert client.get("/plain/-1").status_code == 422


def test_routes_that_need_the_binder_stay_on_it() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def dep() -> int:
        return 1

    from catzilla import Body, Cookie, Depends

    def needs_dep(d: int = Depends(dep)) -> int: ...
    def needs_cookie(c: str = Cookie()) -> int: ...
    def needs_list(q: list[int] = Query()) -> int: ...
    def needs_pattern(q: str = Query(pattern="^a")) -> int: ...
    def needs_copy(q: str, tags: list[str] = Body([])) -> int: ...
    def needs_embed(item: Item = Body(embed=True)) -> int: ...
    def two_bodies(a: Item, b: Item) -> int: ...
    def keyword_only(*, q: str) -> int: ...

    for i, fn in enumerate(
        (needs_dep, needs_cookie, needs_list, needs_pattern, needs_copy, needs_embed, two_bodies, keyword_only)
    ):
        app.add_route(f"/r{i}", fn, ["POST"])
    assert [t[0] for _, t, _ in app._endpoints] == [MODE_REQUEST] * 8


def test_middleware_rewires_a_direct_route() -> None:
    app = Catzilla(auto_memory_tuning=False)
    seen: list[str] = []

    @app.get("/x/{n}")
    def x(n: int) -> dict[str, int]:
        return {"n": n}

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        seen.append(request.url.path)
        return await call_next(request)

    with TestClient(app) as client:
        assert client.get("/x/4").json() == {"n": 4}
    assert seen == ["/x/4"]


def test_percent_encoded_utf8_reaches_the_handler_decoded() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def echo(q: str, name: str = Path()) -> dict[str, str]:
        return {"q": q, "name": name}

    twins(app, "GET", "/e/{name}", echo)
    with TestClient(app) as client:
        r = same(client, "GET", "/e/caf%C3%A9?q=caf%C3%A9+au+lait")
        assert r.json() == {"q": "café au lait", "name": "café"}


@pytest.mark.parametrize(
    "args, message",
    [
        ([CallArg("nowhere", "q", "str", None, True, None)], "source 'nowhere'"),
        ([CallArg("query", "q", "complex", None, True, None)], "kind 'complex'"),
        ([CallArg("query", "q", "call", None, True, None)], "callable converter"),
        ([("query", "q")], "CALL_ARG_FIELDS"),
        ([CallArg("query", "q", "str", None, True, None)] * 17, "at most 16"),
    ],
)
def test_call_plan_rejects_bad_plans_by_name(args: list[Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        _core.CallPlan(args)
