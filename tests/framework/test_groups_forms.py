"""Route groups (prefix, tags, nesting, dependencies) and form bodies."""

from typing import Annotated

import pytest
from pydantic import BaseModel

from catzilla import APIRouter, Catzilla, Depends, Form, Header, HTTPException, RouterGroup
from catzilla.testing import TestClient


def test_groups_prefix_nesting_tags_and_dependencies() -> None:
    app = Catzilla(auto_memory_tuning=False)
    seen: list[str] = []

    def api_key(x_key: str = Header("none")) -> None:
        seen.append(x_key)
        if x_key == "bad":
            raise HTTPException(401, "bad key")

    api = RouterGroup(prefix="/api/v1", tags=["v1"], dependencies=[Depends(api_key)])
    users = RouterGroup(prefix="/users", tags=["users"])

    @users.get("/{user_id}")
    def get_user(user_id: int):
        return {"user_id": user_id}

    @users.post("", status_code=201)
    def create_user():
        return {"created": True}

    @api.get("/status")
    def status():
        return {"ok": True}

    api.include_routes(users)
    app.include_routes(api)

    with TestClient(app) as c:
        assert c.get("/api/v1/users/7", headers={"x-key": "k"}).json() == {"user_id": 7}
        r = c.post("/api/v1/users")
        assert r.status_code == 201 and r.json() == {"created": True}
        assert c.get("/api/v1/status").json() == {"ok": True}
        assert c.get("/api/v1/status", headers={"x-key": "bad"}).status_code == 401
        assert c.get("/users/7").status_code == 404
    assert seen == ["k", "none", "none", "bad"]
    by_path = {r.path: r for r in app.routes}
    assert set(by_path) == {"/api/v1/users/{user_id}", "/api/v1/users", "/api/v1/status"}
    assert by_path["/api/v1/users/{user_id}"].tags == ("v1", "users")
    assert by_path["/api/v1/status"].tags == ("v1",)


def test_include_twice_under_other_prefixes_and_fastapi_names() -> None:
    app = Catzilla(auto_memory_tuning=False)
    router = APIRouter()

    @router.get("/ping")
    def ping():
        return "pong"

    app.include_router(router, prefix="/a")
    app.include_routes(router, prefix="/b", tags=["b"])
    with TestClient(app) as c:
        assert c.get("/a/ping").json() == "pong" and c.get("/b/ping").json() == "pong"
    with pytest.raises(ValueError, match="prefix"):
        RouterGroup(prefix="api/")


class Login(BaseModel):
    username: str
    password: str


def test_form_fields() -> None:
    app = Catzilla(auto_memory_tuning=False)

    @app.post("/login")
    def login(
        username: str = Form(min_length=3),
        password: str = Form(),
        remember: bool = Form(False),
        tags: list[str] = Form([]),
    ):
        return {"username": username, "password_len": len(password), "remember": remember, "tags": tags}

    @app.post("/login-model")
    def login_model(data: Annotated[Login, Form()]):
        return {"username": data.username}

    with TestClient(app) as c:
        r = c.post("/login", data={"username": "alice", "password": "s3cret", "remember": "on", "tags": ["a", "b"]})
        assert r.json() == {"username": "alice", "password_len": 6, "remember": True, "tags": ["a", "b"]}
        r = c.post(
            "/login",
            content=b"username=al+ice&password=p%26w",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.json()["username"] == "al ice" and r.json()["password_len"] == 3
        r = c.post("/login", data={"username": "al"})
        assert r.status_code == 422
        assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
            ("string_too_short", ["body", "username"]),
            ("missing", ["body", "password"]),
        ]
        assert c.post("/login-model", data={"username": "bob", "password": "x"}).json() == {"username": "bob"}
        r = c.post("/login-model", data={"username": "bob"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "password"]
