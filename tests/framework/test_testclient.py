"""TestClient: real loopback server, httpx responses, server exceptions, and the other injections."""

import threading
import time

import httpx
import pytest

from catzilla import BackgroundTasks, Catzilla, HTTPException, Response, status
from catzilla.testing import TestClient


def make_app() -> Catzilla:
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/")
    def index():
        return {"thread": threading.current_thread().name}

    @app.get("/boom")
    def boom():
        raise KeyError("missing thing")

    @app.get("/teapot")
    def teapot():
        raise HTTPException(status.HTTP_418_IM_A_TEAPOT)

    return app


def test_real_socket_and_httpx_responses() -> None:
    app = make_app()
    with TestClient(app) as client:
        r = client.get("/")
        assert isinstance(r, httpx.Response)
        assert r.headers["server"] == "catzilla"  # answered by the C server
        assert r.json() == {"thread": "catzilla-testclient"}
        # Starlette's base URL; the request still goes to 127.0.0.1:port
        assert client.port and str(client.base_url) == "http://testserver"
        assert app.port == client.port
    assert app.port is None  # stopped


def test_server_exceptions_are_raised_by_default() -> None:
    app = make_app()
    with TestClient(app) as client:
        with pytest.raises(KeyError, match="missing thing"):
            client.get("/boom")
        assert client.get("/teapot").status_code == 418  # handled exceptions are responses
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
        assert r.status_code == 500 and r.json()["detail"] == "Internal Server Error"


def test_without_with_block_starts_lazily_and_app_can_be_served_again() -> None:
    app = make_app()
    client = TestClient(app)
    assert client.get("/").status_code == 200
    client.close()
    with TestClient(app) as again:
        assert again.get("/").status_code == 200


def test_response_parameter_and_background_tasks() -> None:
    app = Catzilla(auto_memory_tuning=False)
    done = threading.Event()
    results: list[str] = []

    def write_log(msg: str) -> None:
        results.append(msg)
        done.set()

    @app.post("/notify", status_code=202)
    def notify(email: str, background_tasks: BackgroundTasks, response: Response):
        background_tasks.add_task(write_log, f"sent to {email}")
        response.headers["X-Queued"] = "1"
        response.set_cookie("seen", "yes")
        return {"queued": True}

    @app.get("/created")
    def created(response: Response):
        response.status_code = 201
        return {"ok": True}

    with TestClient(app) as client:
        r = client.post("/notify?email=a@b.c")
        assert r.status_code == 202 and r.json() == {"queued": True}
        assert r.headers["x-queued"] == "1" and "seen=yes" in r.headers["set-cookie"]
        assert done.wait(5) and results == ["sent to a@b.c"]
        assert client.get("/created").status_code == 201


def test_async_handlers_run_concurrently() -> None:
    import asyncio

    app = Catzilla(auto_memory_tuning=False)

    @app.get("/sleep")
    async def sleep(t: float = 0.3):
        await asyncio.sleep(t)
        return t

    with TestClient(app) as client:
        start = time.monotonic()
        threads = [threading.Thread(target=client.get, args=("/sleep",)) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert time.monotonic() - start < 1.2


def test_several_clients_share_one_server() -> None:
    app = make_app()
    first = TestClient(app)
    second = TestClient(app)  # FastAPI's tests make one per test and may never close them
    assert first.get("/").status_code == 200
    assert second.get("/").status_code == 200
    assert first.port == second.port
    first.close()
    assert second.get("/").status_code == 200  # the server lives while a client does
    port = second.port
    second.close()
    with TestClient(app) as third:  # and starts again afterwards
        assert third.get("/").status_code == 200
    assert port is not None


def test_streamed_responses() -> None:
    from catzilla import StreamingResponse

    app = Catzilla(auto_memory_tuning=False)

    @app.get("/lines")
    def lines():
        return StreamingResponse(f"line {i}\n" for i in range(3))

    client = TestClient(app)
    with client.stream("GET", "/lines") as r:  # starts the server on its own, too
        assert r.headers["transfer-encoding"] == "chunked"
        assert list(r.iter_lines()) == ["line 0", "line 1", "line 2"]
    client.close()
