"""Middleware: app-wide and per-route, sync and async, before/after, order; CORS, GZip, request IDs."""

import asyncio
import gzip

from catzilla import Catzilla, HTTPException, JSONResponse, Request, Response, RouterGroup
from catzilla.middleware import (
    BaseHTTPMiddleware,
    CORSMiddleware,
    GZipMiddleware,
    Middleware,
    RequestIDMiddleware,
)
from catzilla.testing import TestClient


class Recorder(Middleware):
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def before(self, request: Request):
        self.log.append(f"{self.name}:before")
        if request.query_params.get("stop") == self.name:
            return JSONResponse({"stopped_by": self.name}, status_code=403)
        return None

    def after(self, request: Request, response: Response):
        self.log.append(f"{self.name}:after")
        response.headers.append("X-Trail", self.name)
        return None


def test_order_short_circuit_and_response_changes() -> None:
    log: list[str] = []
    app = Catzilla(auto_memory_tuning=False, middleware=[Recorder("first", log)])
    app.add_middleware(Recorder("added", log))  # added last: outermost

    group = RouterGroup("/g", middleware=[Recorder("group", log)])

    @group.get("/x", middleware=[Recorder("route", log)])
    def x():
        log.append("handler")
        return {"ok": True}

    app.include_routes(group)

    @app.get("/plain")
    def plain():
        log.append("handler")
        return "plain"

    with TestClient(app) as c:
        r = c.get("/g/x")
        assert r.json() == {"ok": True}
        assert log == [
            "added:before",
            "first:before",
            "group:before",
            "route:before",
            "handler",
            "route:after",
            "group:after",
            "first:after",
            "added:after",
        ]
        assert r.headers.get_list("x-trail") == ["route", "group", "first", "added"]
        log.clear()
        r = c.get("/g/x?stop=group")
        assert r.status_code == 403 and r.json() == {"stopped_by": "group"}
        assert log == ["added:before", "first:before", "group:before", "first:after", "added:after"]
        log.clear()
        r = c.get("/plain")  # a str is a JSON string behind middleware too, as without
        assert r.headers["content-type"] == "application/json" and r.json() == "plain"
        assert log == ["added:before", "first:before", "handler", "first:after", "added:after"]


def test_function_middleware_sync_and_async_like_fastapi() -> None:
    app = Catzilla(auto_memory_tuning=False)

    @app.middleware("http")
    async def timing(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Async"] = "1"
        return response

    @app.middleware("http")
    def sync_mw(request: Request, call_next):
        if request.headers.get("x-block"):
            return JSONResponse({"blocked": True}, status_code=401)
        response = call_next(request)
        response.headers["X-Sync"] = "1"
        return response

    @app.get("/sync")
    def sync_route():
        return {"route": "sync"}

    @app.get("/async")
    async def async_route():
        await asyncio.sleep(0)
        return {"route": "async"}

    with TestClient(app) as c:
        for path in ("/sync", "/async"):
            r = c.get(path)
            assert r.json() == {"route": path[1:]}
            assert r.headers["x-async"] == "1" and r.headers["x-sync"] == "1"
        r = c.get("/sync", headers={"x-block": "1"})  # sync_mw, added last, is outermost: timing never ran
        assert r.status_code == 401 and "x-async" not in r.headers and "x-sync" not in r.headers


def test_sync_chain_for_async_route_and_replacing_the_response() -> None:
    class Replace(Middleware):
        async def after(self, request, response):
            if response.status_code == 404:
                return JSONResponse({"replaced": True}, status_code=410)
            return None

    class Wrap(BaseHTTPMiddleware):
        def dispatch(self, request, call_next):  # sync dispatch around an async chain
            response = call_next(request)
            response.headers["X-Wrapped"] = "yes"
            return response

    app = Catzilla(auto_memory_tuning=False)
    app.add_middleware(Replace)
    app.add_middleware(Wrap)

    @app.get("/gone")
    async def gone():
        raise HTTPException(404)

    @app.get("/fine")
    def fine():
        return {"fine": True}

    with TestClient(app) as c:
        r = c.get("/gone")
        assert r.status_code == 410 and r.json() == {"replaced": True} and r.headers["x-wrapped"] == "yes"
        r = c.get("/fine")
        assert r.status_code == 200 and r.headers["x-wrapped"] == "yes"


def test_middleware_sees_errors_as_responses() -> None:
    seen: list[int] = []

    class Seen(Middleware):
        def after(self, request, response):
            seen.append(response.status_code)

    app = Catzilla(auto_memory_tuning=False)
    app.add_middleware(Seen)

    @app.get("/v")
    def v(n: int):
        return n

    @app.get("/boom")
    def boom():
        raise RuntimeError("x")

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/v?n=x").status_code == 422
        assert c.get("/boom").status_code == 500
        assert c.get("/v?n=1").json() == 1
    assert seen == [422, 500, 200]


def test_no_middleware_no_wrapper() -> None:
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/")
    def hello():
        return {}

    @app.get("/mw", middleware=[GZipMiddleware()])
    def with_mw():
        return {}

    with TestClient(app) as c:
        c.get("/")
        targets = {r.path: t for r, t, _ in app._endpoints}
        assert targets["/"] == [0, hello]
        assert targets["/mw"][0] == 1 and targets["/mw"][1] is not with_mw


def test_cors() -> None:
    app = Catzilla(auto_memory_tuning=False)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["https://a.example"],
        allow_methods=["GET", "POST"],
        allow_headers=["X-Token"],
        allow_credentials=True,
        expose_headers=["X-Total"],
        max_age=99,
    )

    @app.post("/data")
    def data():
        return {"d": 1}

    with TestClient(app) as c:
        pre = c.options(
            "/data",
            headers={
                "Origin": "https://a.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-token",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://a.example"
        assert pre.headers["access-control-allow-methods"] == "GET, POST"
        assert "x-token" in pre.headers["access-control-allow-headers"]
        assert pre.headers["access-control-max-age"] == "99"
        assert pre.headers["access-control-allow-credentials"] == "true"
        bad = c.options("/data", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        r = c.post("/data", headers={"Origin": "https://a.example"})
        assert r.json() == {"d": 1}
        assert r.headers["access-control-allow-origin"] == "https://a.example"
        assert r.headers["access-control-expose-headers"] == "X-Total"
        assert r.headers["vary"] == "Origin"
        r = c.post("/data", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        plain_options = c.options("/data")  # no preflight headers: the usual 204 with Allow
        assert plain_options.status_code == 204 and "POST" in plain_options.headers["allow"]


def test_cors_wildcard() -> None:
    app = Catzilla(auto_memory_tuning=False, middleware=[CORSMiddleware(allow_origins=["*"])])
    app.get("/")(lambda: {"x": 1})
    with TestClient(app) as c:
        assert c.get("/", headers={"Origin": "https://any.example"}).headers["access-control-allow-origin"] == "*"


def test_gzip_minimum_size() -> None:
    app = Catzilla(auto_memory_tuning=False)
    app.add_middleware(GZipMiddleware, minimum_size=100)

    @app.get("/big")
    def big():
        return {"data": "x" * 1000}

    @app.get("/small")
    def small():
        return {"data": "x"}

    with TestClient(app) as c:
        r = c.get("/big", headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
        assert int(r.headers["content-length"]) < 200
        assert r.json() == {"data": "x" * 1000}  # httpx decompresses
        with c.stream("GET", "/big", headers={"Accept-Encoding": "gzip"}) as raw:
            compressed = b"".join(raw.iter_raw())
        assert gzip.decompress(compressed) == b'{"data":"' + b"x" * 1000 + b'"}'
        r = c.get("/small", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in r.headers and r.json() == {"data": "x"}
        r = c.get("/big", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in r.headers and len(r.content) > 1000


def test_request_id() -> None:
    app = Catzilla(auto_memory_tuning=False)
    app.add_middleware(RequestIDMiddleware)

    @app.get("/")
    def index(request: Request):
        return {"id": request.state.request_id}

    with TestClient(app) as c:
        r1, r2 = c.get("/"), c.get("/")
        assert r1.headers["x-request-id"] == r1.json()["id"]
        assert len(r1.json()["id"]) == 32 and r1.json()["id"] != r2.json()["id"]
        r = c.get("/", headers={"X-Request-ID": "abc-123"})
        assert r.json() == {"id": "abc-123"} and r.headers["x-request-id"] == "abc-123"
        r = c.get("/", headers={"X-Request-ID": "bad id with spaces"})
        assert r.json()["id"] != "bad id with spaces"
