"""Typed parameters: Path, Query, Header, Cookie with FastAPI's constraints; 422 in FastAPI's shape."""

from __future__ import annotations

import enum
import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, Optional

import pytest

from catzilla import Catzilla, Cookie, Header, Path, Query, Request
from catzilla.testing import TestClient

INT_MSG = "Input should be a valid integer, unable to parse string as an integer"


class Opaque:
    """A type neither catzilla nor pydantic can build from a string."""


class Color(str, enum.Enum):
    red = "red"
    blue = "blue"


def make_app() -> Catzilla:
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/items/{item_id}")
    def item(
        item_id: Annotated[int, Path(ge=1, le=1000)],
        q: Annotated[Optional[str], Query(max_length=5)] = None,
        page: int = Query(1, ge=1),
        ratio: float = Query(0.5, gt=0, lt=1),
    ):
        return {"item_id": item_id, "q": q, "page": page, "ratio": ratio}

    @app.get("/search")
    def search(q: str = Query(min_length=2, pattern="^[a-z]+$"), limit: int | None = None):
        return {"q": q, "limit": limit}

    @app.get("/alias")
    def alias(item_query: str = Query(alias="item-query")):
        return {"value": item_query}

    @app.get("/list")
    def many(ids: list[int] = Query([]), names: Annotated[list[str] | None, Query(min_length=2)] = None):
        return {"ids": ids, "names": names}

    @app.get("/headers")
    def headers(
        user_agent: str = Header(),
        x_count: int = Header(0, ge=0),
        x_tags: list[str] = Header([]),
        raw_name: str | None = Header(None, convert_underscores=False),
    ):
        return {"ua": user_agent, "count": x_count, "tags": x_tags, "raw": raw_name}

    @app.get("/cookies")
    def cookies(session: str = Cookie(), theme: str = Cookie("light"), visits: int = Cookie(0)):
        return {"session": session, "theme": theme, "visits": visits}

    @app.get("/kinds/{color}")
    def kinds(
        color: Color,
        day: date,
        amount: Decimal = Decimal("0"),
        ident: uuid.UUID | None = None,
        mode: Literal["fast", "slow"] = "fast",
        flag: bool = False,
    ):
        return {
            "color": color.value,
            "day": day.isoformat(),
            "amount": str(amount),
            "ident": str(ident) if ident else None,
            "mode": mode,
            "flag": flag,
        }

    @app.get("/with-request/{name}")
    def with_request(name: str, request: Request, n: int = 1):
        return {"name": name, "path": request.path, "n": n, "is_request": isinstance(request, Request)}

    @app.get("/files/{rest:path}")
    def files(rest: str):
        return {"rest": rest}

    return app


@pytest.fixture(scope="module")
def client():
    app = make_app()
    with TestClient(app) as c:
        yield c
    app.close()


def test_path_query_conversion_and_defaults(client: TestClient) -> None:
    assert client.get("/items/5").json() == {"item_id": 5, "q": None, "page": 1, "ratio": 0.5}
    assert client.get("/items/7?q=abc&page=3&ratio=0.25").json() == {"item_id": 7, "q": "abc", "page": 3, "ratio": 0.25}


def test_every_violation_is_reported_in_fastapi_shape(client: TestClient) -> None:
    r = client.get("/items/0?q=toolong&page=0&ratio=1")
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "greater_than_equal",
                "loc": ["path", "item_id"],
                "msg": "Input should be greater than or equal to 1",
                "input": "0",
                "ctx": {"ge": 1},
            },
            {
                "type": "string_too_long",
                "loc": ["query", "q"],
                "msg": "String should have at most 5 characters",
                "input": "toolong",
                "ctx": {"max_length": 5},
            },
            {
                "type": "greater_than_equal",
                "loc": ["query", "page"],
                "msg": "Input should be greater than or equal to 1",
                "input": "0",
                "ctx": {"ge": 1},
            },
            {
                "type": "less_than",
                "loc": ["query", "ratio"],
                "msg": "Input should be less than 1",
                "input": "1",
                "ctx": {"lt": 1},
            },
        ]
    }


def test_le_and_gt(client: TestClient) -> None:
    r = client.get("/items/1001?ratio=0")
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
        ("less_than_equal", ["path", "item_id"]),
        ("greater_than", ["query", "ratio"]),
    ]


def test_int_parsing_error(client: TestClient) -> None:
    r = client.get("/items/abc")
    assert r.status_code == 422
    assert r.json()["detail"] == [{"type": "int_parsing", "loc": ["path", "item_id"], "msg": INT_MSG, "input": "abc"}]


def test_missing_required_query_and_string_constraints(client: TestClient) -> None:
    assert client.get("/search").json() == {
        "detail": [{"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": None}]
    }
    short = client.get("/search?q=a").json()["detail"][0]
    assert short["type"] == "string_too_short" and short["ctx"] == {"min_length": 2}
    assert short["msg"] == "String should have at least 2 characters"
    bad = client.get("/search?q=ABC").json()["detail"][0]
    assert bad == {
        "type": "string_pattern_mismatch",
        "loc": ["query", "q"],
        "msg": "String should match pattern '^[a-z]+$'",
        "input": "ABC",
        "ctx": {"pattern": "^[a-z]+$"},
    }
    assert client.get("/search?q=abc&limit=4").json() == {"q": "abc", "limit": 4}
    assert client.get("/search?q=a%20b").status_code == 422  # decoded before the pattern check


def test_alias(client: TestClient) -> None:
    assert client.get("/alias?item-query=x").json() == {"value": "x"}
    assert client.get("/alias?item_query=x").json()["detail"][0]["loc"] == ["query", "item-query"]


def test_repeated_query_keys_into_lists(client: TestClient) -> None:
    assert client.get("/list?ids=1&ids=2&ids=3").json() == {"ids": [1, 2, 3], "names": None}
    assert client.get("/list?names=a&names=b").json() == {"ids": [], "names": ["a", "b"]}
    r = client.get("/list?ids=1&ids=x&names=a")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0] == {"type": "int_parsing", "loc": ["query", "ids", 1], "msg": INT_MSG, "input": "x"}
    assert detail[1]["type"] == "too_short" and detail[1]["loc"] == ["query", "names"]


def test_headers(client: TestClient) -> None:
    r = client.get(
        "/headers",
        headers=[("User-Agent", "tester"), ("X-Count", "4"), ("X-Tags", "a"), ("X-Tags", "b"), ("raw_name", "r")],
    )
    assert r.json() == {"ua": "tester", "count": 4, "tags": ["a", "b"], "raw": "r"}
    r = client.get("/headers", headers={"x-count": "-1"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["header", "x-count"]


def test_missing_header() -> None:
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/")
    def need(x_token: str = Header()):
        return x_token

    with TestClient(app) as c:
        assert c.get("/").json() == {
            "detail": [{"type": "missing", "loc": ["header", "x-token"], "msg": "Field required", "input": None}]
        }
        assert c.get("/", headers={"X-Token": "t"}).json() == "t"


def test_cookies(client: TestClient) -> None:
    r = client.get("/cookies", headers={"Cookie": "session=abc; visits=3"})
    assert r.json() == {"session": "abc", "theme": "light", "visits": 3}
    r = client.get("/cookies")
    assert r.json()["detail"] == [
        {"type": "missing", "loc": ["cookie", "session"], "msg": "Field required", "input": None}
    ]


def test_enum_date_decimal_uuid_literal_bool(client: TestClient) -> None:
    u = uuid.uuid4()
    r = client.get(f"/kinds/blue?day=2024-02-29&amount=1.50&ident={u}&mode=slow&flag=yes")
    assert r.json() == {
        "color": "blue",
        "day": "2024-02-29",
        "amount": "1.50",
        "ident": str(u),
        "mode": "slow",
        "flag": True,
    }
    r = client.get("/kinds/green?day=nope&mode=medium&flag=maybe")
    assert r.status_code == 422
    by_loc = {tuple(e["loc"]): e for e in r.json()["detail"]}
    assert by_loc[("path", "color")]["type"] == "enum"
    assert by_loc[("path", "color")]["msg"] == "Input should be 'red' or 'blue'"
    assert by_loc[("query", "day")]["type"] == "date_from_datetime_parsing"  # pydantic's word for "nope"
    assert by_loc[("query", "mode")]["type"] == "literal_error"
    assert by_loc[("query", "flag")]["type"] == "bool_parsing"


def test_request_injection_by_name_and_type(client: TestClient) -> None:
    assert client.get("/with-request/bob?n=2").json() == {
        "name": "bob",
        "path": "/with-request/bob",
        "n": 2,
        "is_request": True,
    }


def test_path_catch_all(client: TestClient) -> None:
    assert client.get("/files/a/b%20c.txt").json() == {"rest": "a/b c.txt"}


def test_bad_declarations_fail_at_registration() -> None:
    app = Catzilla(auto_memory_tuning=False)
    with pytest.raises(TypeError, match="unsupported annotation"):

        @app.get("/x")
        def x(v: Opaque):
            return v

    with pytest.raises(TypeError, match="not in the route path"):

        @app.get("/y")
        def y(v: int = Path()):
            return v

    with pytest.raises(TypeError, match=r"\*args"):

        @app.get("/z")
        def z(*args):
            return args


def test_no_params_is_mode_0_and_the_bare_handler() -> None:
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/")
    def hello():
        return {"hello": "world"}

    @app.get("/typed")
    def typed(q: int):
        return q

    @app.get("/with-request")
    def with_request(request: Request, q: int):
        return q

    entry = {r.path: t for r, t, _ in app._endpoints}
    assert entry["/"] == [0, hello]
    assert entry["/typed"][:2] == [2, typed]  # arguments taken in C, the handler called directly
    assert entry["/with-request"][0] == 1
    with TestClient(app) as c:
        assert c.get("/").json() == {"hello": "world"}
        assert entry["/"] == [0, hello]  # still the bare handler while serving
        assert c.get("/typed?q=3").json() == 3
