"""The app tests/server/test_asgi_interop.py serves under uvicorn (``uvicorn
tests.server.asgi_interop_app:app``) and through httpx.ASGITransport: HTTP
with bodies streamed both ways, a background task, a WebSocket, lifespan
hooks, and a pure ASGI middleware that adds a header."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import BaseModel

from catzilla import BackgroundTasks, Catzilla, HTTPException, Request, StreamingResponse, WebSocket


class AddHeader:
    """A pure ASGI middleware: a header on every HTTP response, and the scope
    types it saw (in ``seen``)."""

    seen: ClassVar[list[str]] = []

    def __init__(self, app: Any, name: str = "x-asgi", value: str = "1") -> None:
        self.app = app
        self.header = (name.encode(), value.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        AddHeader.seen.append(scope["type"])
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


class Item(BaseModel):
    name: str
    price: float


app = Catzilla(docs_url=None, openapi_url=None, max_body_size=8 * 1024 * 1024)
app.add_middleware(AddHeader, value="uvicorn")
events: list[str] = []


@app.on_event("startup")
async def started() -> None:
    events.append("startup")
    app.state.started = True


@app.on_event("shutdown")
def stopped() -> None:
    marker = os.environ.get("CATZILLA_TEST_SHUTDOWN_MARKER")
    if marker:
        with open(marker, "w") as f:
            f.write("shutdown")


@app.get("/")
def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.post("/items")
def create_item(item: Item, background: BackgroundTasks) -> Item:
    background.add_task(events.append, f"created {item.name}")
    return item


@app.get("/events")
def list_events() -> dict[str, Any]:
    return {"events": events, "started": getattr(app.state, "started", False)}


@app.post("/count")
async def count(request: Request) -> dict[str, int]:
    pieces = size = 0
    async for chunk in request.stream():
        pieces += bool(chunk)
        size += len(chunk)
    return {"size": size, "pieces": pieces}


@app.get("/stream")
def stream(n: int = 3) -> StreamingResponse:
    async def numbers() -> AsyncIterator[str]:
        for i in range(n):
            yield f"{i}\n"

    return StreamingResponse(numbers(), media_type="text/plain")


@app.get("/teapot")
def teapot() -> None:
    raise HTTPException(418, "short and stout", headers={"x-tea": "earl grey"})


@app.websocket("/ws/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        if text == "bye":
            await websocket.close(code=1000)
            return
        await websocket.send_text(f"{room}: {text}")
