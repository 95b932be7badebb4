"""What a 500 tells the client: nothing internal unless the app asked for ``debug=True``.

Every way a handler's exception reaches the error hook is covered: the
no-argument call, the direct C call, the compiled binder, async handlers,
sync and async middleware chains, exception handlers that fail themselves,
and error handlers whose answer cannot be encoded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from catzilla import Catzilla, HTTPException, Request, Response
from catzilla.calling.call import Binding
from catzilla.params import MODE_DIRECT, MODE_NO_ARGS, MODE_REQUEST
from catzilla.testing import TestClient

SECRET = "secret-1234"
SAFE = {"detail": "Internal Server Error"}


class Boom(Exception):
    pass


class HandledBoom(Exception):
    pass


def build(**settings: Any) -> Catzilla:
    app = Catzilla(auto_memory_tuning=False, **settings)

    @app.get("/no-args")
    def no_args() -> Any:
        raise Boom(SECRET)

    @app.get("/direct/{n}")
    def direct(n: int) -> Any:
        raise Boom(SECRET)

    @app.get("/binder")
    def binder(request: Request) -> Any:
        raise Boom(SECRET)

    @app.get("/async")
    async def async_handler(n: int = 0) -> Any:
        await asyncio.sleep(0)
        raise Boom(SECRET)

    @app.get("/handler-fails")
    def handler_fails() -> Any:
        raise HandledBoom(SECRET)

    @app.exception_handler(HandledBoom)
    def on_handled(request: Request, exc: HandledBoom) -> Any:
        raise Boom(f"handler failed too: {exc}")

    @app.get("/unencodable-detail")
    def unencodable() -> Any:
        raise HTTPException(400, detail={SECRET: object()})

    @app.get("/bad-return")
    def bad_return() -> Any:
        return {SECRET}  # a set: no response can be made of it

    return app


def with_middleware(app: Catzilla, kind: str) -> Catzilla:
    if kind == "sync":

        def mw(request: Request, call_next: Callable[[Request], Any]) -> Response:
            return call_next(request)  # type: ignore[no-any-return]

        app.add_middleware(mw)
    elif kind == "async":

        async def amw(request: Request, call_next: Callable[[Request], Any]) -> Response:
            return await call_next(request)  # type: ignore[no-any-return]

        app.add_middleware(amw)
    elif kind == "raising":

        def raising(request: Request, call_next: Callable[[Request], Any]) -> Response:
            raise Boom(SECRET)

        app.add_middleware(raising)
    return app


PATHS = ["/no-args", "/direct/1", "/binder", "/async", "/handler-fails", "/unencodable-detail", "/bad-return"]


@pytest.fixture
def make() -> Iterator[Callable[..., Catzilla]]:
    apps: list[Catzilla] = []

    def factory(middleware: str = "", **settings: Any) -> Catzilla:
        app = with_middleware(build(**settings), middleware)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


def test_the_paths_are_the_ones_named() -> None:
    """The routes above really take the no-args, direct and binder paths."""
    app = build()
    modes = {r.path: r.binding.mode for r in app.routes if isinstance(r.binding, Binding)}
    assert modes["/no-args"] == MODE_NO_ARGS
    assert modes["/direct/{n}"] == MODE_DIRECT
    assert modes["/binder"] == MODE_REQUEST
    app.close()


@pytest.mark.parametrize("middleware", ["", "sync", "async"])
@pytest.mark.parametrize(
    "settings",
    [{}, {"production": True}, {"debug": True, "production": True}],
    ids=["default", "production", "debug+production"],
)
def test_500_bodies_are_safe(
    make: Callable[..., Catzilla], middleware: str, settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = make(middleware, **settings)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR, "catzilla.error"):
        for path in PATHS:
            caplog.clear()
            r = client.get(path)
            assert (path, r.status_code, r.json()) == (path, 500, SAFE)
            assert SECRET not in r.text and "Traceback" not in r.text
            assert r.headers["content-type"] == "application/json"
            # the traceback is in the log instead
            logged = [rec for rec in caplog.records if rec.name == "catzilla.error"]
            assert logged, path
            assert logged[-1].exc_info is not None
            assert "Traceback" in caplog.text
            assert (SECRET if path != "/bad-return" else "unsupported type 'set'") in caplog.text
        assert client.get("/direct/x").status_code == 422  # and the app goes on


def test_failing_middleware_is_a_safe_500(make: Callable[..., Catzilla]) -> None:
    with TestClient(make("raising"), raise_server_exceptions=False) as client:
        r = client.get("/binder")
        assert (r.status_code, r.json()) == (500, SAFE)


@pytest.mark.parametrize("middleware", ["", "sync", "async"])
def test_debug_shows_the_exception_and_traceback(make: Callable[..., Catzilla], middleware: str) -> None:
    with TestClient(make(middleware, debug=True), raise_server_exceptions=False) as client:
        for path in ["/no-args", "/direct/1", "/binder", "/async"]:
            body = client.get(path).json()
            assert body["detail"] == "Internal Server Error"
            assert body["error"] == f"Boom: {SECRET}"
            tb = "".join(body["traceback"])
            assert "Traceback" in tb and "raise Boom(SECRET)" in tb, path
        body = client.get("/handler-fails").json()
        assert body["error"] == f"Boom: handler failed too: {SECRET}"


def test_testclient_still_raises_server_exceptions(make: Callable[..., Catzilla]) -> None:
    app = make()
    with TestClient(app) as client:
        for path in ["/no-args", "/direct/1", "/binder", "/async"]:
            with pytest.raises(Boom, match=SECRET):
                client.get(path)
        assert client.get("/direct/x").status_code == 422


def test_debug_and_production_are_checked() -> None:
    with pytest.raises(TypeError, match="debug"):
        Catzilla(debug="yes")  # type: ignore[arg-type]
    app = Catzilla(auto_memory_tuning=False)
    assert app.debug is False
    app.close()
