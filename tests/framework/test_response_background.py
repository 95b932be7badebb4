"""Starlette's ``Response(background=...)``: a BackgroundTask (or BackgroundTasks)
given to a response runs once it is written; for a streamed response, once the
stream is over. Whatever the route's path to C (no arguments, arguments taken in
C, a generated binder) and whatever response class."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from catzilla import Catzilla, Request
from catzilla.background import BackgroundTask, BackgroundTasks
from catzilla.response import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from tests.framework.conftest import client_for


class Log:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.changed = threading.Condition()

    def add(self, item: Any) -> None:
        with self.changed:
            self.items.append(item)
            self.changed.notify_all()

    async def add_async(self, item: Any) -> None:
        self.add(item)

    def wait(self, n: int) -> list[Any]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.items) >= n, timeout=5), self.items
            return list(self.items)


def test_every_response_class_runs_its_background(app: Catzilla, tmp_path: Path) -> None:
    log = Log()
    page = tmp_path / "page.txt"
    page.write_text("from disk")

    @app.get("/plain")  # no arguments: the C core calls it and writes what it returns
    def plain() -> Response:
        return PlainTextResponse("hi", background=BackgroundTask(log.add, "plain"))

    @app.get("/json/{n}")  # arguments taken in C
    def json_(n: int) -> Response:
        return JSONResponse({"n": n}, background=BackgroundTask(log.add_async, f"json {n}"))

    @app.get("/html")  # through the binder
    async def html(request: Request) -> Response:
        return HTMLResponse("<p>x</p>", background=BackgroundTask(log.add, request.url.path))

    @app.get("/redirect")
    def redirect() -> Response:
        return RedirectResponse("/plain", background=BackgroundTask(log.add, "redirect"))

    @app.get("/file")
    def file() -> Response:
        return FileResponse(page, background=BackgroundTask(log.add, "file"))

    client = client_for(app, follow_redirects=False)
    assert client.get("/plain").text == "hi"
    assert log.wait(1) == ["plain"]
    assert client.get("/json/3").json() == {"n": 3}
    assert log.wait(2)[-1] == "json 3"
    assert client.get("/html").text == "<p>x</p>"
    assert log.wait(3)[-1] == "/html"
    r = client.get("/redirect")
    assert r.status_code == 307 and r.headers["location"] == "/plain"
    assert log.wait(4)[-1] == "redirect"
    assert client.get("/file").text == "from disk"
    assert log.wait(5)[-1] == "file"


def test_a_file_removed_by_its_background_is_still_sent_whole(app: Catzilla, tmp_path: Path) -> None:
    # The usual cleanup: a temporary file sent, then deleted.
    log = Log()
    data = os.urandom(3 * 1024 * 1024)

    @app.get("/export")
    def export() -> Response:
        path = tmp_path / "export.bin"
        path.write_bytes(data)
        return FileResponse(path, background=BackgroundTask(lambda: (path.unlink(), log.add("removed"))))

    r = client_for(app).get("/export")
    assert r.status_code == 200 and r.content == data
    assert log.wait(1) == ["removed"] and not (tmp_path / "export.bin").exists()


def test_a_stream_runs_its_background_after_the_last_piece(app: Catzilla) -> None:
    log = Log()

    def pieces() -> Any:
        for i in range(3):
            log.add(f"piece {i}")
            yield f"{i},"

    async def apieces() -> Any:
        for i in range(3):
            log.add(f"apiece {i}")
            yield f"{i};"

    @app.get("/stream")
    def stream() -> Response:
        tasks = BackgroundTasks()
        tasks.add_task(log.add, "first")
        tasks.add_task(log.add_async, "second")
        return StreamingResponse(pieces(), background=tasks)

    @app.get("/astream")
    async def astream() -> Response:
        return StreamingResponse(apieces(), background=BackgroundTask(log.add, "after"))

    client = client_for(app)
    assert client.get("/stream").text == "0,1,2,"
    assert log.wait(5) == ["piece 0", "piece 1", "piece 2", "first", "second"]
    assert client.get("/astream").text == "0;1;2;"
    assert log.wait(9)[5:] == ["apiece 0", "apiece 1", "apiece 2", "after"]


def test_a_failing_background_is_logged_and_the_next_runs(app: Catzilla, caplog: Any) -> None:
    log = Log()

    def fail() -> None:
        raise RuntimeError("background went wrong")

    @app.get("/")
    def index() -> Response:
        return Response("ok", background=BackgroundTasks([BackgroundTask(fail), BackgroundTask(log.add, "next")]))

    assert client_for(app).get("/").text == "ok"
    assert log.wait(1) == ["next"]
    assert "background went wrong" in caplog.text
