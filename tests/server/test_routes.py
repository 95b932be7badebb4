"""Route registration: errors, app.routes, and what a failed registration leaves behind."""

from __future__ import annotations

import httpx
import pytest

from catzilla import Catzilla, Route
from tests.server.conftest import serve_in_thread


def own_routes(app: Catzilla, base: int) -> list[Route]:
    """The routes a test added (an app may come with built-in ones, e.g. docs)."""
    return app.routes[base:]


def test_duplicate_route_keeps_the_first_with_a_warning() -> None:
    """As FastAPI: the same method and path twice is served by the first route
    (the second is listed, never reached); a warning names it."""
    app = Catzilla()
    base = len(app.routes)

    @app.get("/a")
    def a():
        return 1

    with pytest.warns(UserWarning, match=r"route GET '/a' is already registered: <lambda> is never reached"):
        app.get("/a")(lambda: 2)
    assert [r.path for r in own_routes(app, base)] == ["/a", "/a"]
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        assert c.get("/a").json() == 1
    app.close()


def test_conflicting_parameter_names_raise_value_error() -> None:
    app = Catzilla()
    app.get("/x/{a}")(lambda a: a)
    with pytest.raises(ValueError) as info:
        app.get("/x/{b}/y")(lambda b: b)
    msg = str(info.value)
    assert "conflict" in msg and "{b}" in msg and "{a}" in msg and '"/x/{a}"' in msg
    app.close()


def test_same_path_other_method_is_fine() -> None:
    app = Catzilla()
    base = len(app.routes)
    app.get("/r")(lambda: 1)
    app.post("/r")(lambda: 2)
    assert [sorted(r.methods) for r in own_routes(app, base)] == [["GET"], ["POST"]]
    app.close()


def test_bad_patterns_raise_value_error() -> None:
    app = Catzilla()
    base = len(app.routes)
    with pytest.raises(ValueError, match="'/'"):
        app.get("nope")(lambda: 1)
    with pytest.raises(ValueError, match="converter"):
        app.get("/bad/{id:int}")(lambda id: 1)
    assert own_routes(app, base) == []
    app.close()


def test_routes_listing() -> None:
    app = Catzilla()
    base = len(app.routes)

    @app.get("/")
    def index():
        return {}

    @app.route("/items/{item_id}", methods=["get", "PUT", "GET"], name="item")
    def item(item_id: int):
        return {}

    @app.post("/upload")
    async def upload():
        return {}

    routes = own_routes(app, base)
    assert all(isinstance(r, Route) for r in app.routes)
    assert [(r.path, r.methods, r.name) for r in routes] == [
        ("/", frozenset({"GET"}), "index"),
        ("/items/{item_id}", frozenset({"GET", "PUT"}), "item"),
        ("/upload", frozenset({"POST"}), "upload"),
    ]
    assert routes[1].endpoint is item and routes[2].endpoint is upload
    app.routes.clear()  # a copy
    assert len(app.routes) == base + 3
    app.close()


def test_multi_method_route_over_a_taken_method_serves_the_others() -> None:
    """route('/m', methods=['POST', 'GET']) after GET /m: GET stays the first
    route's (with a warning), POST is the new one's."""
    app = Catzilla()
    base = len(app.routes)
    app.get("/m")(lambda: "first")
    with pytest.warns(UserWarning, match="already registered"):
        app.route("/m", methods=["POST", "GET"])(lambda: "second")
    assert [(r.path, r.methods) for r in own_routes(app, base)] == [
        ("/m", frozenset({"GET"})),
        ("/m", frozenset({"POST", "GET"})),
    ]
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        assert c.get("/m").json() == "first"
        assert c.post("/m").json() == "second"


def test_non_ascii_literal_route_is_reachable() -> None:
    """cz_router.h allows bytes >= 0x80 (raw UTF-8) in patterns, so
    @app.get("/caf\u00e9") registers. Clients send that URL percent-encoded
    (/caf%C3%A9; raw UTF-8 in a request-target is refused with 400), so the
    route must match it, as path parameters are matched after decoding."""
    app = Catzilla()
    app.get("/caf\u00e9")(lambda: "coffee")
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        r = c.get("/caf\u00e9")
        assert r.request.url.raw_path == b"/caf%C3%A9"
        assert r.status_code == 200, f"GET /caf%C3%A9 -> {r.status_code} {r.text}: the registered route is unreachable"
        assert r.json() == "coffee"
