"""JSON request bodies through a real server on loopback, read by the C reader.

Handlers see exactly ``json.loads``'s value of the bytes sent (``request.json()``
in sync and async handlers, and body parameters without a model), type for
type; malformed bodies get the answers ``json.loads``'s errors give (422 with
FastAPI's json_invalid detail for body parameters; the ValueError a handler
catches around ``request.json()``), and nesting beyond the reader's limit is
such a ValueError too, never a 500.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from catzilla import Body, Catzilla, JSONResponse, Request
from tests.framework.test_json_read import INVALID, VALID, encode, random_value, same
from tests.server.conftest import serve_in_thread

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[httpx.Client, list[Any]]]:
    app = Catzilla()
    seen: list[Any] = []

    @app.post("/sync")
    def read_sync(request: Request) -> Any:
        try:
            seen.append(request.json())
        except ValueError as exc:
            return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=400)
        return {"ok": True}

    @app.post("/async")
    async def read_async(request: Request) -> Any:
        try:
            seen.append(await request.json())
        except ValueError as exc:
            return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=400)
        return {"ok": True}

    @app.post("/scalar")
    def scalar(value: int = Body()) -> Any:
        seen.append(value)
        return {"value": value}

    @app.post("/embedded")
    def embedded(a: int = Body(), b: str = Body()) -> Any:
        seen.append((a, b))
        return {"a": a, "b": b}

    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=30) as client:
        yield client, seen


def documents() -> list[bytes]:
    rng = random.Random(1811)
    docs = [d for d in VALID if json.detect_encoding(d).startswith("utf-8")]
    docs += [encode(rng, random_value(rng)) for _ in range(150)]
    big = {f"k{i}": [i, i / 7, f"v\u00e9{i}\U0001f600", None, {"n": -i, "t": True}] for i in range(1500)}
    docs.append(json.dumps(big).encode())  # about 100 KiB
    return docs


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_handlers_get_json_loads_values(server: tuple[httpx.Client, list[Any]], path: str) -> None:
    client, seen = server
    docs = documents()
    assert any(len(d) > 100_000 for d in docs)
    for doc in docs:
        seen.clear()
        r = client.post(path, content=doc, headers=JSON)
        assert r.status_code == 200, (doc[:80], r.text)
        assert len(seen) == 1
        same(seen[0], json.loads(doc))


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_malformed_bodies_raise_json_loads_errors(server: tuple[httpx.Client, list[Any]], path: str) -> None:
    client, _ = server
    for doc in INVALID:
        try:
            json.loads(doc)
        except ValueError as exc:
            want = {"error": type(exc).__name__, "message": str(exc)}
        r = client.post(path, content=doc, headers=JSON)
        assert (r.status_code, r.json()) == (400, want), doc[:80]


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_nesting_beyond_the_limit_is_a_value_error(server: tuple[httpx.Client, list[Any]], path: str) -> None:
    client, seen = server
    seen.clear()
    ok = b"[" * 512 + b"]" * 512
    assert client.post(path, content=ok, headers=JSON).status_code == 200
    same(seen[0], json.loads(ok))
    r = client.post(path, content=b"[" * 100_000 + b"]" * 100_000, headers=JSON)
    assert r.status_code == 400
    assert r.json() == {
        "error": "JSONDecodeError",
        "message": "Arrays and objects nested deeper than 512 levels: line 1 column 513 (char 512)",
    }


def test_body_parameters(server: tuple[httpx.Client, list[Any]]) -> None:
    client, seen = server
    seen.clear()
    assert client.post("/scalar", content=b" 12345678901234567890 ", headers=JSON).json() == {
        "value": 12345678901234567890
    }
    r = client.post("/embedded", content='{"a": 7, "b": "\\ud83d\\ude00\u00e9", "a": 8}'.encode(), headers=JSON)
    assert r.json() == {"a": 8, "b": "\U0001f600\u00e9"}
    assert seen == [12345678901234567890, (8, "\U0001f600\u00e9")]


@pytest.mark.parametrize("doc", [b'{"a": 1,}', b'{"a": 1 "b": "x"}', b"[01]", b'{"a": "\\x"}', b"{" * 600])
def test_malformed_body_parameters_get_fastapis_422(server: tuple[httpx.Client, list[Any]], doc: bytes) -> None:
    client, _ = server
    r = client.post("/embedded", content=doc, headers=JSON)
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    try:
        json.loads(doc)
        raise AssertionError("json.loads read it")
    except json.JSONDecodeError as exc:
        want = {"type": "json_invalid", "loc": ["body", exc.pos], "msg": "JSON decode error", "input": {}}
        want["ctx"] = {"error": exc.msg}
    assert detail == want


def test_invalid_utf8_body_parameter_is_a_422(server: tuple[httpx.Client, list[Any]]) -> None:
    client, _ = server
    r = client.post("/embedded", content=b'{"a": 1, "b": "\xff"}', headers=JSON)
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["type"] == "json_invalid" and detail["loc"] == ["body"]
    assert "can't decode byte 0xff" in detail["ctx"]["error"]


def test_deep_body_parameters_get_a_4xx(server: tuple[httpx.Client, list[Any]]) -> None:
    """Nesting beyond the reader's limit in a body parameter: a client error, never a 500."""
    client, _ = server
    r = client.post("/embedded", content=b'{"a": ' + b"[" * 600 + b"]" * 600 + b"}", headers=JSON)
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["type"] == "json_invalid"
    assert detail["ctx"]["error"].startswith("Arrays and objects nested deeper than 512 levels")
    r = client.post("/embedded", content=b"[" * 100_000, headers=JSON)
    assert r.status_code == 400
    assert r.json() == {"detail": "There was an error parsing the body"}
