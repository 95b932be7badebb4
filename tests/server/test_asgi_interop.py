"""ASGI and WSGI interoperability (catzilla.asgi_app, catzilla.middleware.wsgi):

- ASGI middleware classes (Starlette's and hand-written ones) added with
  ``app.add_middleware`` around the routes of our own server, on loopback;
- the app as an ASGI application, under real uvicorn in a subprocess, through
  httpx.ASGITransport and through Starlette's TestClient;
- WSGI apps mounted with ``app.mount_wsgi`` / ``WSGIMiddleware``.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from catzilla import (
    BackgroundTasks,
    Catzilla,
    HTTPException,
    Request,
    RouterGroup,
    StreamingResponse,
    WebSocket,
)
from catzilla.background import BackgroundTask
from catzilla.middleware import Middleware
from catzilla.middleware.wsgi import WSGIMiddleware
from catzilla.params import MODE_DIRECT, MODE_NO_ARGS
from catzilla.response import Response
from tests.server.conftest import HOST, free_port, serve_in_thread, wait_until_answering

pytest.importorskip("starlette", reason="starlette is not installed (scripts/requirements-dev.txt)")
pytest.importorskip("websockets", reason="websockets is not installed (scripts/requirements-dev.txt)")

from starlette.middleware import Middleware as StarletteMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.testclient import TestClient as StarletteTestClient
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[2]
BIG = 3 * 1024 * 1024


class Recorder:
    """A pure ASGI middleware: records every scope type it sees, adds a response
    header and a scope entry the handler can read (``scope["state"]``), and adds a
    header to a WebSocket's accept."""

    def __init__(self, app: Any, log: list[str], tag: str = "outer") -> None:
        self.app = app
        self.log = log
        self.tag = tag

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.log.append(f"{self.tag}:{scope['type']}")
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        scope = dict(scope, state={**scope.get("state", {}), "tag": self.tag})
        scope["session"] = {"user": "ada"}

        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = dict(message, headers=[*message.get("headers", []), (b"x-seen-by", self.tag.encode())])
            await send(message)

        await self.app(scope, receive, tagged)


class NativeHeader(Middleware):
    """Catzilla's own middleware, to run inside the ASGI chain."""

    def after(self, request: Request, response: Response) -> None:
        response.headers["x-native"] = "1"


def build(log: list[str]) -> Catzilla:
    app = Catzilla(docs_url=None, openapi_url=None)
    done = threading.Event()
    app.state.done = done

    @app.get("/")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/users/{user_id}")
    def user(user_id: int, request: Request) -> dict[str, Any]:
        return {"id": user_id, "tag": request.scope["state"]["tag"], "session": request.session}

    @app.get("/big")
    def big() -> dict[str, str]:
        return {"text": "catzilla " * 500}

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        size = pieces = 0
        async for chunk in request.stream():
            size += len(chunk)
            pieces += bool(chunk)
        return {"size": size, "pieces": pieces}

    @app.get("/numbers")
    def numbers() -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(4):
                yield f"{i};".encode()
                await asyncio.sleep(0)

        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(418, "I'm a teapot", headers={"x-tea": "green"})

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("boom")

    @app.post("/later")
    def later(background: BackgroundTasks) -> dict[str, bool]:
        background.add_task(lambda: (log.append("task"), done.set()))
        return {"queued": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{websocket.scope['state']['tag']} {text}")
        await websocket.close()

    return app


# -- ASGI middleware on our own server -------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[str, list[str], Catzilla]]:
    log: list[str] = []
    app = build(log)
    app.add_middleware(NativeHeader)
    app.add_middleware(Recorder, log=log)
    with serve_in_thread(app, max_body_size=2 * BIG) as srv:
        yield f"http://{HOST}:{srv.port}", log, app


def test_pure_asgi_middleware_wraps_every_route(served: tuple[str, list[str], Catzilla]) -> None:
    base, log, _ = served
    r = httpx.get(f"{base}/users/7")
    assert r.status_code == 200
    assert r.json() == {"id": 7, "tag": "outer", "session": {"user": "ada"}}  # scope entries reach the handler
    assert r.headers["x-seen-by"] == "outer"
    assert r.headers["x-native"] == "1"  # Catzilla's own middleware still runs, inside the ASGI chain
    assert "outer:lifespan" in log and "outer:http" in log


def test_errors_and_validation_pass_through_the_chain(served: tuple[str, list[str], Catzilla]) -> None:
    base, _, _ = served
    r = httpx.get(f"{base}/teapot")
    assert (r.status_code, r.json(), r.headers["x-tea"], r.headers["x-seen-by"]) == (
        418,
        {"detail": "I'm a teapot"},
        "green",
        "outer",
    )
    r = httpx.get(f"{base}/users/abc")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "user_id"]
    r = httpx.get(f"{base}/broken")
    assert r.status_code == 500 and r.headers["x-seen-by"] == "outer"
    r = httpx.get(f"{base}/nowhere")  # no route: the chain sees it too, its innermost app answers 404
    assert (r.status_code, r.json(), r.headers["x-seen-by"]) == (404, {"detail": "Not Found"}, "outer")


def test_bodies_stream_both_ways_through_the_chain(served: tuple[str, list[str], Catzilla]) -> None:
    base, _, _ = served

    def pieces() -> Iterator[bytes]:
        for _ in range(BIG // 65536):
            yield b"x" * 65536

    r = httpx.post(f"{base}/upload", content=pieces())
    assert r.status_code == 200 and r.json()["size"] == BIG and r.json()["pieces"] > 1
    with httpx.stream("GET", f"{base}/numbers") as r:
        assert r.headers["x-seen-by"] == "outer"
        assert b"".join(r.iter_raw()) == b"0;1;2;3;"


def test_background_tasks_run_after_the_response(served: tuple[str, list[str], Catzilla]) -> None:
    base, log, app = served
    r = httpx.post(f"{base}/later")
    assert r.json() == {"queued": True}
    assert app.state.done.wait(5), "the background task did not run"
    assert "task" in log


def test_websocket_through_asgi_middleware(served: tuple[str, list[str], Catzilla]) -> None:
    base, log, _ = served
    with connect(base.replace("http", "ws") + "/ws") as ws:
        assert ws.response is not None and ws.response.headers["x-seen-by"] == "outer"
        ws.send("hi")
        assert ws.recv(timeout=5) == "outer hi"
    assert "outer:websocket" in log


def test_starlette_middleware_classes() -> None:
    app = build([])
    app.add_middleware(GZipMiddleware, minimum_size=100)
    app.add_middleware(CORSMiddleware, allow_origins=["https://ok.example"], allow_methods=["GET", "POST"])
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    with serve_in_thread(app) as srv:
        base = f"http://{HOST}:{srv.port}"
        preflight = httpx.options(
            f"{base}/users/1",
            headers={"origin": "https://ok.example", "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://ok.example"
        refused = httpx.options(
            f"{base}/users/1", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
        assert refused.status_code == 400
        simple = httpx.get(f"{base}/", headers={"origin": "https://ok.example"})
        assert simple.headers["access-control-allow-origin"] == "https://ok.example"
        with httpx.Client() as client:
            raw = client.get(f"{base}/big", headers={"accept-encoding": "gzip"}).read()
        r = httpx.get(f"{base}/big", headers={"accept-encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert r.json()["text"].startswith("catzilla ")
        assert raw and len(r.headers["content-length"]) and int(r.headers["content-length"]) < 4500
        small = httpx.get(f"{base}/", headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in small.headers  # under minimum_size
        bad_host = httpx.get(f"{base}/", headers={"host": "evil.example"})
        assert (bad_host.status_code, bad_host.text) == (400, "Invalid host header")


def test_gzip_body_is_real_gzip() -> None:
    app = build([])
    app.add_middleware(GZipMiddleware, minimum_size=10)
    with (
        serve_in_thread(app) as srv,
        httpx.stream("GET", f"http://{HOST}:{srv.port}/big", headers={"accept-encoding": "gzip"}) as r,
    ):
        compressed = b"".join(r.iter_raw())
    assert gzip.decompress(compressed).startswith(b'{"text":"catzilla ')


def test_lifespan_runs_through_the_chain() -> None:
    log: list[str] = []
    app = Catzilla(docs_url=None, openapi_url=None)
    app.add_event_handler("startup", lambda: log.append("startup"))
    app.add_event_handler("shutdown", lambda: log.append("shutdown"))
    app.add_middleware(Recorder, log=log)

    @app.get("/")
    def hello() -> str:
        return "hi"

    with serve_in_thread(app) as srv:
        assert httpx.get(f"http://{HOST}:{srv.port}/").json() == "hi"
        assert log[:2] == ["outer:lifespan", "startup"]
    assert log[-1] == "shutdown"


def test_a_failed_startup_through_the_chain_stops_listen() -> None:
    def broken() -> None:
        raise RuntimeError("no database")

    app = Catzilla(docs_url=None, openapi_url=None, on_startup=[broken])
    app.add_middleware(Recorder, log=[])
    with pytest.raises(RuntimeError, match="no database"):
        app.listen(port=0, host=HOST)
    assert app.port is None


def test_a_middleware_that_drops_lifespan_still_gets_hooks_run() -> None:
    log: list[str] = []

    class HTTPOnly:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                raise RuntimeError("HTTP only")
            await self.app(scope, receive, send)

    app = Catzilla(docs_url=None, openapi_url=None, on_startup=[lambda: log.append("startup")])
    app.add_middleware(HTTPOnly)

    @app.get("/")
    def hello() -> str:
        return "hi"

    with serve_in_thread(app) as srv:
        assert httpx.get(f"http://{HOST}:{srv.port}/").json() == "hi"
    assert log == ["startup"]


def test_starlette_base_http_middleware_subclass() -> None:
    from starlette.middleware.base import BaseHTTPMiddleware as StarletteBaseHTTPMiddleware

    class Timing(StarletteBaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-path"] = request.url.path
            return response

    app = build([])
    app.add_middleware(Timing)
    with serve_in_thread(app) as srv:
        r = httpx.get(f"http://{HOST}:{srv.port}/")
        assert (r.json(), r.headers["x-path"]) == ({"hello": "world"}, "/")
        with httpx.stream("GET", f"http://{HOST}:{srv.port}/numbers") as streamed:
            assert b"".join(streamed.iter_raw()) == b"0;1;2;3;"


def test_starlette_session_middleware() -> None:
    pytest.importorskip("itsdangerous", reason="itsdangerous is not installed (scripts/requirements-dev.txt)")
    from starlette.middleware.sessions import SessionMiddleware

    app = Catzilla(docs_url=None, openapi_url=None)
    app.add_middleware(SessionMiddleware, secret_key="not so secret")

    @app.post("/login/{user}")
    def login(user: str, request: Request) -> dict[str, str]:
        request.session["user"] = user
        return {"logged in": user}

    @app.get("/me")
    def me(request: Request) -> dict[str, Any]:
        return {"user": request.session.get("user")}

    with serve_in_thread(app) as srv, httpx.Client(base_url=f"http://{HOST}:{srv.port}") as client:
        assert client.get("/me").json() == {"user": None}
        r = client.post("/login/ada")
        assert r.json() == {"logged in": "ada"} and "session=" in r.headers["set-cookie"]
        assert client.get("/me").json() == {"user": "ada"}  # the signed cookie, read back by the middleware
        client.cookies.set("session", "forged")
        assert client.get("/me").json() == {"user": None}

    async def main() -> None:
        async with asgi_client(app) as client:
            await client.post("/login/grace")
            assert (await client.get("/me")).json() == {"user": "grace"}

    asyncio.run(main())


def test_middleware_given_as_starlette_middleware_entries() -> None:
    log: list[str] = []
    app = Catzilla(docs_url=None, openapi_url=None, middleware=[StarletteMiddleware(Recorder, log=log, tag="listed")])

    @app.get("/")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    with serve_in_thread(app) as srv:
        assert httpx.get(f"http://{HOST}:{srv.port}/").headers["x-seen-by"] == "listed"


def test_asgi_middleware_order_last_added_is_outermost() -> None:
    log: list[str] = []
    app = build(log)
    app.add_middleware(Recorder, log=log, tag="inner")
    app.add_middleware(Recorder, log=log, tag="outer")
    with serve_in_thread(app) as srv:
        log.clear()  # what the server's readiness probe left
        r = httpx.get(f"http://{HOST}:{srv.port}/")
    assert r.headers.get_list("x-seen-by") == ["inner", "outer"]  # the inner one's header is added first
    http = [entry for entry in log if entry.endswith(":http")]
    assert http == ["outer:http", "inner:http"]


def route_level_app(log: list[str], app_level: bool) -> Catzilla:
    app = Catzilla(docs_url=None, openapi_url=None)

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    @app.get("/wrapped/{n}", middleware=[StarletteMiddleware(Recorder, log=log, tag="route")])
    def wrapped(n: int, request: Request) -> dict[str, Any]:
        return {"n": n, "tag": request.scope["state"]["tag"]}

    group = RouterGroup(prefix="/g", middleware=[StarletteMiddleware(Recorder, log=log, tag="group"), NativeHeader()])

    @group.get("/x")
    def in_group() -> str:
        return "x"

    @group.websocket("/ws")
    async def group_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.scope["state"]["tag"])
        await websocket.close()

    app.include_routes(group)
    if app_level:
        app.add_middleware(Recorder, log=log, tag="app")
    return app


@pytest.mark.parametrize("app_level", [False, True], ids=["route only", "route and app"])
def test_route_and_group_asgi_middleware(app_level: bool) -> None:
    log: list[str] = []
    app = route_level_app(log, app_level)
    outer = ["app"] if app_level else []
    with serve_in_thread(app) as srv:
        base = f"http://{HOST}:{srv.port}"
        plain = httpx.get(f"{base}/plain")
        assert (plain.json(), plain.headers.get_list("x-seen-by")) == ("plain", outer)
        r = httpx.get(f"{base}/wrapped/3")
        assert r.json() == {"n": 3, "tag": "route"}
        assert r.headers.get_list("x-seen-by") == ["route", *outer]  # the route's own is inside the app's
        assert httpx.get(f"{base}/wrapped/x").status_code == 422
        g = httpx.get(f"{base}/g/x")
        assert (g.json(), g.headers.get_list("x-seen-by"), g.headers["x-native"]) == ("x", ["group", *outer], "1")
        with connect(f"ws://{HOST}:{srv.port}/g/ws") as ws:
            assert ws.recv(timeout=5) == "group"
    if not app_level:  # a route without ASGI middleware keeps its own endpoint
        plain_target = next(t for route, t, _ in app._endpoints if route.path == "/plain")
        assert plain_target[0] == MODE_NO_ARGS  # the C core calls the handler itself
        assert id(plain_target) not in app._asgi_route_stacks and not app._asgi_inner

    async def main() -> None:
        async with asgi_client(route_level_app([], app_level)) as client:
            r = await client.get("/wrapped/4")
            assert r.json() == {"n": 4, "tag": "route"}
            assert r.headers.get_list("x-seen-by") == ["route", *outer]
            assert (await client.get("/plain")).headers.get_list("x-seen-by") == outer

    asyncio.run(main())


def test_a_mounted_catzilla_app_keeps_its_own_asgi_middleware() -> None:
    def make() -> Catzilla:
        sub = Catzilla(docs_url=None, openapi_url=None)
        sub.add_middleware(Recorder, log=[], tag="sub")

        @sub.get("/items/{n}", name="item")
        def item(n: int, request: Request) -> dict[str, Any]:
            return {"n": n, "url_for": str(request.url_for("item", n=1))}

        outer = Catzilla(docs_url=None, openapi_url=None)

        @outer.get("/")
        def root() -> str:
            return "root"

        outer.mount("/sub", sub)
        return outer

    with serve_in_thread(make()) as srv:
        base = f"http://{HOST}:{srv.port}"
        assert "x-seen-by" not in httpx.get(f"{base}/").headers
        r = httpx.get(f"{base}/sub/items/3")
        assert (r.json()["n"], r.headers["x-seen-by"]) == (3, "sub")
        assert r.json()["url_for"].endswith("/sub/items/1")

    async def main() -> None:
        async with asgi_client(make()) as client:
            assert "x-seen-by" not in (await client.get("/")).headers
            r = await client.get("/sub/items/4")
            assert (r.json(), r.headers["x-seen-by"]) == (
                {"n": 4, "url_for": "http://testserver/sub/items/1"},
                "sub",
            )

    asyncio.run(main())


def test_routes_keep_the_fast_path_without_asgi_middleware() -> None:
    app = build([])
    app.add_middleware(NativeHeader)  # Catzilla's own: not an ASGI middleware
    assert app._asgi_middleware == []
    plain = Catzilla(docs_url=None, openapi_url=None)

    @plain.get("/users/{user_id}")
    def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    with serve_in_thread(plain) as srv:
        assert httpx.get(f"http://{HOST}:{srv.port}/users/3").json() == {"id": 3}
    assert plain._endpoints[0][1][0] == MODE_DIRECT  # the C core takes the arguments itself
    assert plain._asgi_inner == {}


def test_bad_middleware_options_name_the_offender() -> None:
    app = Catzilla()
    with pytest.raises(TypeError, match=r"CORSMiddleware.*allow_origin_typo"):
        app.add_middleware(CORSMiddleware, allow_origin_typo=["*"])
    with pytest.raises(TypeError, match="positional options"):
        app.add_middleware(NativeHeader, 1)


# -- the app as an ASGI application ---------------------------------------------------------


def asgi_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def test_served_through_httpx_asgi_transport() -> None:
    log: list[str] = []
    app = build(log)
    app.add_middleware(Recorder, log=log)

    async def main() -> None:
        async with asgi_client(app) as client:
            r = await client.get("/users/5")
            assert r.json() == {"id": 5, "tag": "outer", "session": {"user": "ada"}}
            assert r.headers["x-seen-by"] == "outer"
            assert r.headers["content-length"] == str(len(r.content))
            assert (await client.get("/users/x")).status_code == 422
            missing = await client.get("/nowhere")
            assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
            wrong = await client.delete("/")
            assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, OPTIONS"
            head = await client.head("/")
            assert head.status_code == 200 and head.content == b""
            teapot = await client.get("/teapot")
            assert (teapot.status_code, teapot.headers["x-tea"]) == (418, "green")
            assert (await client.get("/broken")).status_code == 500
            r = await client.post("/upload", content=b"y" * 200_000)
            assert r.json()["size"] == 200_000
            assert (await client.get("/numbers")).text == "0;1;2;3;"
            r = await client.post("/later")
            assert r.json() == {"queued": True}
            assert "task" in log  # the transport returns once the app returned: after its background tasks

    asyncio.run(main())


def test_a_response_background_runs_after_the_response_over_asgi() -> None:
    app = Catzilla(docs_url=None, openapi_url=None)
    log: list[str] = []

    async def note(what: str) -> None:
        log.append(what)

    @app.get("/")
    def index() -> Response:
        log.append("handler")
        return Response("ok", background=BackgroundTask(note, "background"))

    async def main() -> None:
        async with asgi_client(app) as client:
            assert (await client.get("/")).text == "ok"
            assert log == ["handler", "background"]

    asyncio.run(main())


def test_sync_handlers_over_asgi_see_no_event_loop_and_move_to_the_pool_once_seen_blocking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Catzilla(docs_url=None, openapi_url=None)
    order: list[str] = []

    @app.post("/length")
    def length(request: Request) -> dict[str, Any]:
        return {"length": len(request.body), "type": type(request.json()).__name__}

    @app.get("/slow")
    def slow() -> str:
        time.sleep(0.05)
        order.append("slow")
        return "slow"

    @app.get("/fast")
    async def fast() -> str:
        order.append("fast")
        return "fast"

    async def main() -> None:
        async with asgi_client(app) as client:
            r = await client.post("/length", json={"a": 1})
            assert r.json() == {"length": 7, "type": "dict"}  # bytes and a parsed body, not awaitables
            for _ in range(2):  # seen holding the loop twice in a row: the thread pool from then on
                assert (await client.get("/slow")).json() == "slow"
            order.clear()
            slow_call = asyncio.ensure_future(client.get("/slow"))
            await asyncio.sleep(0.01)
            assert (await client.get("/fast")).json() == "fast"
            await slow_call
            assert order == ["fast", "slow"]  # answered while the slow one sleeps on the pool

    with caplog.at_level("WARNING", logger="catzilla"):
        asyncio.run(main())
    assert any("GET /slow: its sync handler held the event loop" in r.getMessage() for r in caplog.records)


def test_body_limits_over_asgi() -> None:
    app = Catzilla(docs_url=None, openapi_url=None, max_body_size=1000)

    @app.post("/small")
    def small(request: Request) -> int:
        return len(request.body)

    @app.post("/bigger", max_body_size=5000)
    def bigger(request: Request) -> int:
        return len(request.body)

    @app.post("/streamed")
    async def streamed(request: Request) -> int:
        return sum([len(chunk) async for chunk in request.stream()])

    async def main() -> None:
        async with asgi_client(app) as client:
            assert (await client.post("/small", content=b"a" * 1000)).json() == 1000
            too_big = await client.post("/small", content=b"a" * 1001)
            assert (too_big.status_code, too_big.json()) == (413, {"detail": "Content Too Large"})
            assert (await client.post("/bigger", content=b"a" * 4000)).json() == 4000  # the route's own limit
            assert (await client.post("/bigger", content=b"a" * 5001)).status_code == 413
            assert (await client.post("/streamed", content=b"a" * 900)).json() == 900
            assert (await client.post("/streamed", content=b"a" * 2000)).status_code == 413

    asyncio.run(main())


def test_a_middleware_that_rewrites_the_path_routes_the_request() -> None:
    class Rewrite:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/old/"):
                scope = dict(scope, path="/users/" + scope["path"][len("/old/") :])  # raw_path left as sent
            await self.app(scope, receive, send)

    app = Catzilla(docs_url=None, openapi_url=None)
    app.add_middleware(Rewrite)

    @app.get("/users/{name}")
    def user(name: str) -> str:
        return name

    async def main() -> None:
        async with asgi_client(app) as client:
            assert (await client.get("/old/ada")).json() == "ada"
            assert (await client.get("/users/a%2Fb")).json() == "a/b"  # the client's encoding kept

    asyncio.run(main())
    with serve_in_thread(app) as srv:
        assert httpx.get(f"http://{HOST}:{srv.port}/old/grace").json() == "grace"


def test_mounted_in_a_starlette_app() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = Catzilla(docs_url=None, openapi_url=None)

    @app.get("/items/{item_id}", name="item")
    def item(item_id: int, request: Request) -> dict[str, Any]:
        return {
            "id": item_id,
            "path": request.path,
            "url_for": str(request.url_for("item", item_id=9)),
            "scheme": request.url.scheme,
        }

    outer = Starlette(routes=[Mount("/v2", app=app)])

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="https://shop.example") as c:
            r = await c.get("/v2/items/3")
            assert r.json() == {
                "id": 3,
                "path": "/items/3",
                "url_for": "https://shop.example/v2/items/9",
                "scheme": "https",
            }
            assert (await c.get("/v2/nowhere")).status_code == 404

    asyncio.run(main())


def test_files_refusals_and_failed_startup_over_asgi(tmp_path: Path) -> None:
    from starlette.websockets import WebSocketDisconnect as StarletteWebSocketDisconnect

    from catzilla import Depends, FileResponse

    page = tmp_path / "page.html"
    page.write_bytes(b"<h1>" + b"x" * 200_000 + b"</h1>")
    app = Catzilla(docs_url=None, openapi_url=None)

    @app.get("/page")
    def serve_page() -> FileResponse:
        return FileResponse(page)

    @app.get("/gone")
    def gone() -> FileResponse:
        return FileResponse(tmp_path / "missing.txt")

    def token(websocket: WebSocket) -> str:
        if websocket.query_params.get("token") != "secret":
            raise HTTPException(403, "no token")
        return "ok"

    @app.websocket("/guarded")
    async def guarded(websocket: WebSocket, who: str = Depends(token)) -> None:
        await websocket.accept()
        await websocket.send_text(who)
        await websocket.close()

    with StarletteTestClient(app) as client:
        r = client.get("/page")
        assert (r.status_code, r.headers["content-type"], len(r.content)) == (200, "text/html; charset=utf-8", 200_009)
        assert r.headers["content-length"] == "200009"
        head = client.head("/page")
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "200009")
        assert client.get("/gone").status_code == 404
        with client.websocket_connect("/guarded?token=secret") as ws:
            assert ws.receive_text() == "ok"
        with pytest.raises(StarletteWebSocketDisconnect) as refused, client.websocket_connect("/guarded"):
            pass
        assert refused.value.code == 1008
        with pytest.raises(StarletteWebSocketDisconnect), client.websocket_connect("/nowhere"):
            pass

    def broken_startup() -> None:
        raise RuntimeError("no database")

    failing = Catzilla(docs_url=None, openapi_url=None, on_startup=[broken_startup])
    with pytest.raises(RuntimeError, match="no database"), StarletteTestClient(failing):
        pass


def test_trailing_slash_redirect_over_asgi() -> None:
    app = Catzilla(docs_url=None, openapi_url=None)

    @app.get("/items/")
    def items() -> list[int]:
        return [1]

    async def main() -> None:
        async with asgi_client(app) as client:
            r = await client.get("/items?x=1")
            assert (r.status_code, r.headers["location"]) == (307, "/items/?x=1")

    asyncio.run(main())


def test_starlette_testclient_websocket_and_lifespan() -> None:
    log: list[str] = []
    app = build(log)
    started: list[str] = []
    app.add_event_handler("startup", lambda: started.append("up"))
    app.add_event_handler("shutdown", lambda: started.append("down"))
    app.add_middleware(Recorder, log=log)
    with StarletteTestClient(app) as client:
        assert started == ["up"]
        assert client.get("/").json() == {"hello": "world"}
        with client.websocket_connect("/ws") as ws:
            ws.send_text("hello")
            assert ws.receive_text() == "outer hello"
    assert started == ["up", "down"]
    assert {"outer:lifespan", "outer:http", "outer:websocket"} <= set(log)


def test_served_by_uvicorn(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="uvicorn is not installed (scripts/requirements-dev.txt)")
    port = free_port()
    marker = tmp_path / "shutdown"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *sys.path]))
    env["CATZILLA_TEST_SHUTDOWN_MARKER"] = str(marker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.server.asgi_interop_app:app", "--host", HOST, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_answering(port, timeout=20, proc=proc)
        base = f"http://{HOST}:{port}"
        r = httpx.get(f"{base}/")
        assert (r.json(), r.headers["x-asgi"], r.headers["server"]) == ({"hello": "world"}, "uvicorn", "uvicorn")
        assert httpx.get(f"{base}/items/3", params={"q": "x"}).json() == {"item_id": 3, "q": "x"}
        assert httpx.get(f"{base}/items/three").status_code == 422
        created = httpx.post(f"{base}/items", json={"name": "hammer", "price": 9.5})
        assert created.json() == {"name": "hammer", "price": 9.5}
        events = httpx.get(f"{base}/events").json()
        assert events["started"] is True and "created hammer" in events["events"]

        def pieces() -> Iterator[bytes]:
            for _ in range(32):
                yield b"z" * 65536

        counted = httpx.post(f"{base}/count", content=pieces()).json()
        assert counted["size"] == 32 * 65536 and counted["pieces"] > 1
        with httpx.stream("GET", f"{base}/stream", params={"n": 5}) as r:
            assert r.headers.get("transfer-encoding") == "chunked"
            assert b"".join(r.iter_raw()) == b"0\n1\n2\n3\n4\n"
        teapot = httpx.get(f"{base}/teapot")
        assert (teapot.status_code, teapot.headers["x-tea"]) == (418, "earl grey")
        with connect(f"ws://{HOST}:{port}/ws/lobby") as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "lobby: hi"
            ws.send("bye")
            with pytest.raises(Exception):  # noqa: B017 (closed by the handler: websockets' ConnectionClosedOK)
                ws.recv(timeout=5)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert marker.read_text() == "shutdown", out.decode(errors="replace")
    assert b"Application startup complete" in out


# -- WSGI ------------------------------------------------------------------------------------


def legacy(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """A plain WSGI app: echoes what PEP 3333 says it gets, in pieces."""
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError("legacy failure")
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Script-Name", environ["SCRIPT_NAME"])])
    yield f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']};".encode()
    yield f"{environ.get('HTTP_X_CUSTOM', '-')};{environ.get('CONTENT_TYPE', '-')};".encode()
    yield f"{len(body)}".encode()


def wsgi_app() -> Catzilla:
    app = Catzilla(docs_url=None, openapi_url=None)
    app.mount_wsgi("/legacy", legacy)
    app.mount("/other", WSGIMiddleware(legacy))

    @app.get("/")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def test_wsgi_app_mounted_on_our_server() -> None:
    with serve_in_thread(wsgi_app()) as srv:
        base = f"http://{HOST}:{srv.port}"
        r = httpx.post(
            f"{base}/legacy/a/b",
            params={"x": "1"},
            content=b"q" * 100_000,
            headers={"x-custom": "yes", "content-type": "text/plain"},
        )
        assert (r.status_code, r.headers["x-script-name"]) == (201, "/legacy")
        assert r.text == "POST /a/b?x=1;yes;text/plain;100000"
        assert httpx.get(f"{base}/other/z").text == "GET /z?;-;-;0"
        assert httpx.get(f"{base}/").json() == {"hello": "world"}  # the app's own routes stay
        assert httpx.get(f"{base}/legacy/fail").status_code == 500


def test_wsgi_app_over_asgi() -> None:
    async def main() -> None:
        async with asgi_client(wsgi_app()) as client:
            r = await client.put("/legacy/x", content=b"abc")
            assert (r.status_code, r.text) == (201, "PUT /x?;-;-;3")

    asyncio.run(main())


def test_wsgi_middleware_refuses_what_is_not_wsgi() -> None:
    with pytest.raises(TypeError, match="WSGI callable"):
        WSGIMiddleware("not an app")  # type: ignore[arg-type]


def test_slow_wsgi_app_does_not_hold_up_other_requests() -> None:
    gate = threading.Event()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        gate.wait(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow"]

    app = Catzilla(docs_url=None, openapi_url=None)
    app.mount_wsgi("/slow", slow)

    @app.get("/fast")
    def fast() -> str:
        return "fast"

    with serve_in_thread(app) as srv:
        base = f"http://{HOST}:{srv.port}"
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(httpx.get(f"{base}/slow/x", timeout=10).text))
        t.start()
        time.sleep(0.2)
        assert httpx.get(f"{base}/fast", timeout=2).json() == "fast"  # answered while the WSGI app blocks
        gate.set()
        t.join(10)
        assert result == ["slow"]
