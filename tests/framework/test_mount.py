"""A Catzilla app mounted in another: its routes, middleware, exception
handlers, static mounts and URLs under the prefix."""

from __future__ import annotations

import pytest

from catzilla import Catzilla, HTTPException, JSONResponse, Request
from catzilla.staticfiles import StaticFiles
from catzilla.testing import TestClient


class Teapot(Exception):
    pass


def build(tmp_path) -> tuple[Catzilla, Catzilla]:
    (tmp_path / "logo.txt").write_text("logo")
    sub = Catzilla(title="Sub API", auto_memory_tuning=False)

    @sub.middleware("http")
    def tag(request: Request, call_next):
        response = call_next(request)
        response.headers["x-sub"] = "yes"
        return response

    @sub.exception_handler(Teapot)
    def teapot(request: Request, exc: Teapot) -> JSONResponse:
        return JSONResponse({"sub": "teapot"}, status_code=418)

    @sub.get("/items/{item_id}")
    def item(item_id: int, request: Request) -> dict[str, object]:
        return {"item": item_id, "self": str(request.url_for("item", item_id=item_id))}

    @sub.get("/boom")
    def boom() -> None:
        raise Teapot()

    @sub.get("/missing")
    def missing() -> None:
        raise HTTPException(404, "no such thing")

    sub.mount("/assets", StaticFiles(directory=tmp_path), name="assets")

    app = Catzilla(auto_memory_tuning=False)

    @app.get("/")
    def home() -> dict[str, str]:
        return {"home": "page"}

    @app.get("/boom")
    def outer_boom() -> None:
        raise Teapot()

    app.mount("/v2", sub, name="v2")
    return app, sub


def test_sub_app_routes_answer_under_the_prefix(tmp_path):
    app, sub = build(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").json() == {"home": "page"}
        r = client.get("/v2/items/3")
        assert r.status_code == 200 and r.headers["x-sub"] == "yes"
        assert r.json() == {"item": 3, "self": "http://testserver/v2/items/3"}
        assert client.get("/v2/items/x").status_code == 422
        assert client.get("/v2/boom").json() == {"sub": "teapot"}  # the sub-app's handler
        assert client.get("/boom").status_code == 500  # not the outer app's routes
        assert client.get("/v2/missing").json() == {"detail": "no such thing"}
        assert client.get("/v2/assets/logo.txt").text == "logo"
        assert client.get("/v2/nowhere").status_code == 404
        assert client.get("/items/3").status_code == 404
        assert client.get("/v2/openapi.json").json()["info"]["title"] == "Sub API"
        assert "/v2/openapi.json" in client.get("/v2/docs").text
    assert sub.url_path_for("item", item_id=5) == "/v2/items/5"
    assert sub.url_path_for("assets", path="/logo.txt") == "/v2/assets/logo.txt"


def test_mount_refuses_itself_and_unknown_apps():
    app = Catzilla(auto_memory_tuning=False)
    with pytest.raises(ValueError, match="itself"):
        app.mount("/x", app)
    with pytest.raises(TypeError, match="an ASGI app"):  # neither static, a Catzilla app nor callable
        app.mount("/x", object())
