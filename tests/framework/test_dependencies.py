"""Depends: nesting, per-request caching, generator cleanup (also on errors), async, overrides."""

from typing import Annotated

import pytest

from catzilla import Catzilla, Depends, Header, HTTPException, Query, Request
from catzilla.testing import TestClient


def test_nested_dependencies_and_caching() -> None:
    app = Catzilla(auto_memory_tuning=False)
    calls: list[str] = []

    def settings() -> dict:
        calls.append("settings")
        return {"page_size": 10}

    def pagination(page: int = Query(1, ge=1), cfg: dict = Depends(settings)) -> dict:
        calls.append("pagination")
        return {"page": page, "size": cfg["page_size"]}

    def uncached(cfg: dict = Depends(settings, use_cache=False)) -> int:
        return cfg["page_size"]

    @app.get("/")
    def index(p: dict = Depends(pagination), cfg: dict = Depends(settings), again: dict = Depends(pagination)):
        return {"p": p, "same": p is again, "cfg": cfg}

    @app.get("/uncached")
    def uncached_route(a: dict = Depends(settings), b: int = Depends(uncached)):
        return {"b": b}

    with TestClient(app) as c:
        assert c.get("/?page=3").json() == {"p": {"page": 3, "size": 10}, "same": True, "cfg": {"page_size": 10}}
        assert calls == ["settings", "pagination"]  # each once per request
        calls.clear()
        assert c.get("/").json()["p"]["page"] == 1
        assert calls == ["settings", "pagination"]  # and again for the next request
        calls.clear()
        assert c.get("/uncached").json() == {"b": 10}
        assert calls == ["settings", "settings"]
        r = c.get("/?page=0")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "page"]


def test_dependencies_run_before_the_handlers_parameters_are_validated() -> None:
    # FastAPI's order: a dependency whose own parameters are valid runs (and may
    # answer, e.g. 400) before the handler's parameters are validated; one whose
    # parameters fail is not called; the errors come dependency first.
    app = Catzilla(auto_memory_tuning=False)
    ran: list[str] = []

    def dep(token: str = Header()) -> str:
        ran.append(token)
        if token == "bad":
            raise HTTPException(400, "bad token")
        return token

    def second(key: str = Header()) -> str:
        ran.append("second")
        return key

    @app.get("/")
    def index(t: str = Depends(dep), n: int = 0):
        return {"t": t, "n": n}

    @app.get("/two", dependencies=[Depends(dep), Depends(second)])
    def two(n: int):
        return {"n": n}

    with TestClient(app) as c:
        r = c.get("/?n=x")
        assert r.status_code == 422
        assert [e["loc"] for e in r.json()["detail"]] == [["header", "token"], ["query", "n"]]
        assert ran == []
        r = c.get("/?n=x", headers={"token": "bad"})
        assert r.status_code == 400 and r.json() == {"detail": "bad token"}
        r = c.get("/?n=x", headers={"token": "ok"})
        assert r.status_code == 422 and ran == ["bad", "ok"]
        assert c.get("/?n=2", headers={"token": "abc"}).json() == {"t": "abc", "n": 2}
        ran.clear()
        r = c.get("/two", headers={"token": "bad"})  # the second's missing header is never read
        assert r.status_code == 400 and ran == ["bad"]
        r = c.get("/two", headers={"token": "ok"})
        assert [e["loc"] for e in r.json()["detail"]] == [["header", "key"], ["query", "n"]]


def test_generator_cleanup_after_response_and_on_error() -> None:
    app = Catzilla(auto_memory_tuning=False)
    events: list[str] = []

    def db():
        events.append("open")
        try:
            yield "session"
        except HTTPException as exc:
            events.append(f"rollback {exc.status_code}")
            raise
        except ValueError:
            events.append("rollback ValueError")
            raise
        finally:
            events.append("close")

    @app.get("/ok")
    def ok(s: str = Depends(db)):
        events.append("handler")
        return {"s": s}

    @app.get("/http-error")
    def http_error(s: str = Depends(db)):
        raise HTTPException(404, "gone")

    @app.get("/crash")
    def crash(s: str = Depends(db)):
        raise ValueError("boom")

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/ok").json() == {"s": "session"}
        assert events == ["open", "handler", "close"]
        events.clear()
        r = c.get("/http-error")
        assert r.status_code == 404 and r.json() == {"detail": "gone"}
        assert events == ["open", "rollback 404", "close"]
        events.clear()
        assert c.get("/crash").status_code == 500
        assert events == ["open", "rollback ValueError", "close"]


def test_cleanup_runs_after_the_response_is_built() -> None:
    app = Catzilla(auto_memory_tuning=False)
    from pydantic import BaseModel

    class Out(BaseModel):
        value: str

    state = {"open": False, "serialized_while_open": None}

    class Resource:
        @property
        def value(self) -> str:
            state["serialized_while_open"] = state["open"]
            return "v"

    def resource():
        state["open"] = True
        yield Resource()
        state["open"] = False

    @app.get("/", response_model=Out)
    def index(r: Resource = Depends(resource)):
        return r  # read through from_attributes while the dependency is still open

    with TestClient(app) as c:
        assert c.get("/").json() == {"value": "v"}
    assert state == {"open": False, "serialized_while_open": True}


def test_exit_code_may_raise_http_exception() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def guard():
        yield
        raise HTTPException(409, "conflict on commit")

    @app.get("/")
    def index(_: None = Depends(guard)):
        return {"ok": True}

    with TestClient(app) as c:
        r = c.get("/")
        assert r.status_code == 409 and r.json() == {"detail": "conflict on commit"}


def test_async_dependencies_and_async_generators() -> None:
    app = Catzilla(auto_memory_tuning=False)
    events: list[str] = []

    async def user(x_user: str = Header("anon")) -> str:
        return x_user.upper()

    async def conn():
        events.append("connect")
        try:
            yield "conn"
        finally:
            events.append("disconnect")

    @app.get("/sync-handler")
    def sync_handler(u: str = Depends(user), c: str = Depends(conn)):
        events.append("handler")
        return {"u": u, "c": c}

    @app.get("/async-handler")
    async def async_handler(u: str = Depends(user), request: Request = None):
        return {"u": u, "path": request.path}

    @app.get("/async-raise")
    async def async_raise(c: str = Depends(conn)):
        raise HTTPException(418)

    with TestClient(app) as c:
        assert c.get("/sync-handler", headers={"x-user": "bob"}).json() == {"u": "BOB", "c": "conn"}
        assert events == ["connect", "handler", "disconnect"]
        assert c.get("/async-handler").json() == {"u": "ANON", "path": "/async-handler"}
        events.clear()
        assert c.get("/async-raise").status_code == 418
        assert events == ["connect", "disconnect"]


def test_class_dependencies_annotated_depends_and_route_dependencies() -> None:
    app = Catzilla(auto_memory_tuning=False)
    seen: list[str] = []

    class Paging:
        def __init__(self, skip: int = 0, limit: int = Query(10, le=50)) -> None:
            self.skip, self.limit = skip, limit

    def audit(x_trace: str = Header("none")) -> None:
        seen.append(x_trace)

    def require_key(key: str = Query()) -> None:
        if key != "k":
            raise HTTPException(403, "bad key")

    @app.get("/", dependencies=[Depends(audit), Depends(require_key)])
    def index(p: Annotated[Paging, Depends()]):
        return {"skip": p.skip, "limit": p.limit}

    with TestClient(app) as c:
        assert c.get("/?key=k&skip=5", headers={"x-trace": "t1"}).json() == {"skip": 5, "limit": 10}
        assert seen == ["t1"]
        assert c.get("/?key=no").status_code == 403
        assert c.get("/?key=k&limit=51").status_code == 422


def test_dependency_overrides() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def get_db() -> str:
        return "real"

    def current_user(db: str = Depends(get_db), token: str = Header("t")) -> dict:
        return {"db": db, "token": token}

    @app.get("/")
    def index(user: dict = Depends(current_user)):
        return user

    with TestClient(app) as c:
        assert c.get("/").json() == {"db": "real", "token": "t"}
        app.dependency_overrides[get_db] = lambda: "fake"
        assert c.get("/").json() == {"db": "fake", "token": "t"}

        def fake_user(name: str = Query("alice")) -> dict:  # an override with parameters of its own
            return {"user": name}

        app.dependency_overrides[current_user] = fake_user
        assert c.get("/?name=bob").json() == {"user": "bob"}
        app.dependency_overrides.clear()
        assert c.get("/").json() == {"db": "real", "token": "t"}


def test_dependency_cycle_is_rejected() -> None:
    app = Catzilla(auto_memory_tuning=False)

    def a(x=Depends(lambda: None)):
        return x

    def b(y=Depends(a)):
        return y

    a.__defaults__ = (Depends(b),)
    with pytest.raises(TypeError, match="cycle"):
        app.get("/")(lambda v=Depends(b): v)


def test_route_dependency_without_a_callable_is_a_clear_error() -> None:
    app = Catzilla(auto_memory_tuning=False)
    with pytest.raises(TypeError, match=r"/x: route dependencies need a callable: Depends\(fn\), got Depends"):
        app.get("/x", dependencies=[Depends()])(lambda: 1)
    app.close()


def test_state_names_a_missing_attribute() -> None:
    from catzilla import State

    state = State(db="x")
    state.user = "u"
    assert (state.db, state.user) == ("x", "u")
    with pytest.raises(AttributeError, match="'State' object has no attribute 'missing'"):
        _ = state.missing
