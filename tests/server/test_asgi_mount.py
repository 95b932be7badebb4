"""ASGI apps mounted with ``app.mount(path, asgi_app)`` (catzilla.asgi), served by a
real server on loopback: a Starlette app, a FastAPI app and a bare ASGI callable
under their prefixes, with bodies in and out, headers, errors and lifespans."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from catzilla import Catzilla
from catzilla.testing import TestClient
from tests.server.conftest import serve_in_thread

starlette = pytest.importorskip("starlette", reason="starlette is not installed (scripts/requirements-dev.txt)")
fastapi = pytest.importorskip("fastapi", reason="fastapi is not installed (scripts/requirements-dev.txt)")
pytest.importorskip("websockets", reason="websockets is not installed (scripts/requirements-dev.txt)")

from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

BIG = 4 * 1024 * 1024


class Item(BaseModel):
    name: str
    price: float


def build(events: list[str], release: threading.Event) -> Catzilla:
    @contextlib.asynccontextmanager
    async def starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("starlette startup")
        yield {"greeting": "hello from the lifespan"}
        events.append("starlette shutdown")

    async def item(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "item_id": request.path_params["item_id"],
                "q": request.query_params.get("q"),
                "path": request.url.path,
                "scope_path": request.scope["path"],
                "root_path": request.scope["root_path"],
                "url_for": str(request.url_for("item", item_id=7)),
                "state": request.state.greeting,
                "method": request.method,
            }
        )

    async def upload(request: Request) -> JSONResponse:
        size = pieces = 0
        async for chunk in request.stream():
            size += len(chunk)
            pieces += bool(chunk)
        return JSONResponse({"size": size, "pieces": pieces})

    async def slow_stream(request: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            yield b"first;"
            released = await _wait_in_thread(release)
            yield b"second" if released else b"late"

        return StreamingResponse(gen(), media_type="text/plain")

    async def cookies(request: Request) -> Response:
        response = PlainTextResponse("made", status_code=201, headers={"X-Sub": "starlette"})
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    async def boom(request: Request) -> Response:
        raise ValueError("a secret in the message")

    async def broken_stream(request: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            yield b"partial"
            raise RuntimeError("mid-body failure")

        return StreamingResponse(gen())

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="echo" if "echo" in websocket.scope["subprotocols"] else None)
        await websocket.send_json({"path": websocket.url.path, "root_path": websocket.scope["root_path"]})
        async for text in websocket.iter_text():
            await websocket.send_text(f"echo: {text}")

    async def forever(request: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.01)
            finally:
                events.append("forever closed")

        return StreamingResponse(gen())

    sub = Starlette(
        routes=[
            WebSocketRoute("/ws", echo),
            Route("/forever", forever),
            Route("/items/{item_id}", item, name="item", methods=["GET", "POST"]),
            Route("/upload", upload, methods=["POST"]),
            Route("/slow", slow_stream),
            Route("/cookies", cookies),
            Route("/boom", boom),
            Route("/broken", broken_stream),
        ],
        lifespan=starlette_lifespan,
    )

    @contextlib.asynccontextmanager
    async def fastapi_lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("fastapi startup")
        yield
        events.append("fastapi shutdown")

    api = FastAPI(lifespan=fastapi_lifespan)

    @api.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"name": item.name, "price": item.price, "total": item.price * 2}

    @api.websocket("/ws/{room}")
    async def room(websocket: fastapi.WebSocket, room: str) -> None:
        await websocket.accept()
        data = await websocket.receive_bytes()
        await websocket.send_bytes(room.encode() + b":" + data)
        await websocket.close(code=4000, reason="done")

    @api.get("/where", name="where")
    async def where(request: fastapi.Request) -> dict[str, Any]:
        return {"url_for": str(request.url_for("where")), "root_path": request.scope["root_path"]}

    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """An ASGI app without lifespan support; /fail raises before answering."""
        assert scope["type"] == "http"
        if scope["path"].endswith("/fail"):
            raise RuntimeError("internal detail")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["path"].encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"|" + scope["root_path"].encode()})

    app = Catzilla(max_body_size=2 * BIG)  # the server's limit holds for mounted apps too

    @app.get("/own")
    def own() -> dict[str, str]:
        return {"served": "by catzilla"}

    @app.middleware("http")
    async def outer(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-outer"] = request.url.path
        return response

    app.mount("/st", sub, name="st")
    app.mount("/api/v1", api)
    app.mount("/bare", bare)
    return app


async def _wait_in_thread(event: threading.Event) -> bool:
    return await asyncio.to_thread(event.wait, 5.0)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[httpx.Client, list[str], threading.Event]]:
    events: list[str] = []
    release = threading.Event()
    app = build(events, release)
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as client:
        yield client, events, release
    # the lifespans ended when the server stopped
    assert events[-2:] in (
        ["starlette shutdown", "fastapi shutdown"],
        ["fastapi shutdown", "starlette shutdown"],
    ), events


def test_routes_under_the_prefix_see_path_query_and_root_path(served) -> None:
    client, _, _ = served
    r = client.get("/st/items/42", params={"q": "x y"})
    assert r.status_code == 200
    assert r.json() == {
        "item_id": "42",
        "q": "x y",
        "path": "/st/items/42",
        "scope_path": "/st/items/42",
        "root_path": "/st",
        "url_for": f"{client.base_url}/st/items/7",
        "state": "hello from the lifespan",
        "method": "GET",
    }
    assert client.get("/own").json() == {"served": "by catzilla"}


def test_fastapi_json_body_and_url_for(served) -> None:
    client, _, _ = served
    r = client.post("/api/v1/items", json={"name": "pen", "price": 1.5})
    assert r.status_code == 200
    assert r.json() == {"name": "pen", "price": 1.5, "total": 3.0}
    r = client.post("/api/v1/items", json={"name": "pen"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "price"]
    assert client.get("/api/v1/where").json() == {
        "url_for": f"{client.base_url}/api/v1/where",
        "root_path": "/api/v1",
    }
    # FastAPI's own document says where it is served
    assert client.get("/api/v1/openapi.json").json()["servers"] == [{"url": "/api/v1"}]


def test_large_body_streamed_in(served) -> None:
    client, _, _ = served

    def body() -> Iterator[bytes]:
        piece = b"x" * 65536
        for _ in range(BIG // len(piece)):
            yield piece

    r = client.post("/st/upload", content=body())  # chunked, as it is produced
    assert r.status_code == 200
    assert r.json()["size"] == BIG
    assert r.json()["pieces"] > 1  # handed over as it arrived, not whole
    r = client.post("/st/upload", content=b"y" * 1000)
    assert r.json() == {"size": 1000, "pieces": 1}


def test_response_streamed_as_it_is_produced(served) -> None:
    client, _, release = served
    release.clear()
    with client.stream("GET", "/st/slow") as r:
        assert r.status_code == 200
        chunks = r.iter_raw()
        assert next(chunks) == b"first;"  # before the app produced the rest
        release.set()
        assert b"".join(chunks) == b"second"


def test_status_and_headers_kept(served) -> None:
    client, _, _ = served
    r = client.get("/st/cookies")
    assert r.status_code == 201
    assert r.text == "made"
    assert r.headers["x-sub"] == "starlette"
    cookies = r.headers.get_list("set-cookie")
    assert [c.split(";")[0] for c in cookies] == ["a=1", "b=2"]
    assert r.headers["x-outer"] == "/st/cookies"  # app middleware wraps the mount as any route


def test_head_and_method_not_allowed(served) -> None:
    client, _, _ = served
    r = client.head("/st/items/1")
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["content-length"]) > 0
    r = client.delete("/st/items/1")
    assert r.status_code == 405
    assert r.headers["allow"]


def test_not_found_comes_from_the_sub_app(served) -> None:
    client, _, _ = served
    r = client.get("/st/nothing/here")
    assert (r.status_code, r.text) == (404, "Not Found")
    r = client.get("/api/v1/nothing")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})


def test_bare_asgi_app_without_lifespan(served) -> None:
    client, _, _ = served
    r = client.get("/bare/some/where")
    assert (r.status_code, r.text) == (200, "/bare/some/where|/bare")


def test_exception_in_the_sub_app_is_a_logged_500(served, caplog: pytest.LogCaptureFixture) -> None:
    client, _, _ = served
    with caplog.at_level(logging.ERROR):
        r = client.get("/st/boom")
        assert (r.status_code, r.text) == (500, "Internal Server Error")
        r = client.get("/bare/fail")
        assert r.status_code == 500
        assert "internal detail" not in r.text
    logged = "\n".join(str(rec.exc_info[1]) for rec in caplog.records if rec.exc_info)
    assert "a secret in the message" in logged
    assert "internal detail" in logged


def test_failure_after_the_head_closes_the_connection(served) -> None:
    client, _, _ = served
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/st/broken")
    assert client.get("/own").status_code == 200  # the server goes on


def test_lifespans_ran_and_mounts_stay_out_of_routes_and_schema(served) -> None:
    client, events, _ = served
    assert {"starlette startup", "fastapi startup"} <= set(events)
    paths = client.get("/openapi.json").json()["paths"]
    assert list(paths) == ["/own"]


def test_mount_lists_and_url_path_for() -> None:
    app = build([], threading.Event())
    assert [r.path for r in app.routes] == ["/own"]
    assert app.url_path_for("st", path="/items/3") == "/st/items/3"
    with pytest.raises(TypeError):
        app.mount("/x", object())


def test_lifespan_startup_failure_stops_listen() -> None:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    app = Catzilla()
    app.mount("/x", failing)
    with pytest.raises(RuntimeError, match="no database"):
        app.listen(port=0)
    app.close()


def test_websocket_echo_through_starlette(served) -> None:
    client, _, _ = served
    url = str(client.base_url).replace("http://", "ws://")
    with connect(url + "/st/ws?x=1", subprotocols=["echo"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "echo"
        assert json.loads(ws.recv()) == {"path": "/st/ws", "root_path": "/st"}
        for text in ("one", "two"):
            ws.send(text)
            assert ws.recv() == f"echo: {text}"
    assert client.get("/st/items/1").status_code == 200  # plain HTTP on the mount goes on


def test_websocket_through_fastapi_closes_with_its_code(served) -> None:
    client, _, _ = served
    url = str(client.base_url).replace("http://", "ws://")
    with connect(url + "/api/v1/ws/blue") as ws:
        ws.send(b"hi")
        assert ws.recv() == b"blue:hi"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "done")


def test_websocket_to_a_path_without_a_websocket_route_is_refused(served) -> None:
    client, _, _ = served
    url = str(client.base_url).replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused:
        connect(url + "/st/items/1")
    assert refused.value.response.status_code == 403


def test_mounted_in_a_mounted_catzilla_app_behind_a_proxy_prefix() -> None:
    async def where(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "path": request.scope["path"],
                "root_path": request.scope["root_path"],
                "url_for": str(request.url_for("w")),
            }
        )

    inner = Catzilla()
    inner.mount("/legacy", Starlette(routes=[Route("/w", where, name="w")]))
    outer = Catzilla(root_path="/proxy")
    outer.mount("/v2", inner)
    with serve_in_thread(outer) as srv:
        r = httpx.get(srv.base_url + "/v2/legacy/w", timeout=10)
    assert r.json() == {
        "path": "/proxy/v2/legacy/w",
        "root_path": "/proxy/v2/legacy",
        "url_for": srv.base_url + "/proxy/v2/legacy/w",
    }


def test_client_leaving_mid_stream_ends_the_apps_stream(served) -> None:
    client, events, _ = served
    with client.stream("GET", "/st/forever") as r:
        assert next(r.iter_raw()).startswith(b"tick")
    deadline = time.monotonic() + 5
    while "forever closed" not in events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "forever closed" in events


def test_test_client_runs_the_mount_and_its_lifespan() -> None:
    events: list[str] = []
    app = build(events, threading.Event())
    with TestClient(app) as client:
        assert client.get("/st/items/5").json()["root_path"] == "/st"
        assert client.post("/api/v1/items", json={"name": "a", "price": 2}).json()["total"] == 4
    assert {"starlette startup", "starlette shutdown", "fastapi startup", "fastapi shutdown"} <= set(events)
