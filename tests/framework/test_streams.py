"""Handlers that yield (catzilla.streams): JSON Lines, server-sent events and raw
chunks, over the real server, and their OpenAPI responses."""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterable, Iterable
from typing import Annotated

import pytest
from pydantic import BaseModel

from catzilla import Catzilla, Depends
from catzilla.responses import HTMLResponse, StreamingResponse
from catzilla.sse import EventSourceResponse, ServerSentEvent
from catzilla.testclient import TestClient


class Item(BaseModel):
    name: str
    price: float = 0.0


@pytest.fixture
def app():
    a = Catzilla(auto_memory_tuning=False)
    yield a
    a.close()


def test_json_lines_by_default_items_checked_by_the_annotation(app: Catzilla) -> None:
    def prefix() -> str:
        return "item-"

    @app.get("/items/{n}")
    async def items(n: int, p: Annotated[str, Depends(prefix)]) -> AsyncIterable[Item]:
        for i in range(n):
            yield {"name": f"{p}{i}", "price": i, "extra": "dropped"}

    @app.get("/plain", status_code=201)
    def plain():
        yield {"a": 1}
        yield [1, "two"]
        yield "three"

    client = TestClient(app)
    r = client.get("/items/3")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/jsonl"
    assert r.text == "".join(f'{{"name":"item-{i}","price":{float(i)}}}\n' for i in range(3))
    assert client.get("/items/x").status_code == 422  # parameters are bound before anything streams
    r = client.get("/plain")
    assert r.status_code == 201
    assert [json.loads(line) for line in r.text.splitlines()] == [{"a": 1}, [1, "two"], "three"]


def test_server_sent_events_data_is_json_raw_data_is_not(app: Catzilla) -> None:
    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterable[ServerSentEvent]:
        yield ServerSentEvent(comment="updates")
        yield ServerSentEvent(data="hello", event="token", id="1", retry=500)
        yield ServerSentEvent(data={"k": [1]})
        yield ServerSentEvent(raw_data="[DONE]", event="done")

    @app.post("/models", response_class=EventSourceResponse)
    def models(item: Item) -> Iterable[Item]:
        yield item
        yield Item(name="second")

    client = TestClient(app)
    r = client.get("/events")
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert "\r" not in r.text
    sent = [e.split("\n") for e in r.text.split("\n\n") if e]
    assert sent[0] == [": updates"]
    assert sorted(sent[1]) == sorted(['data: "hello"', "event: token", "id: 1", "retry: 500"])
    assert sent[2] == ['data: {"k":[1]}']
    assert sorted(sent[3]) == ["data: [DONE]", "event: done"]
    r = client.post("/models", json={"name": "first", "price": 2})
    assert r.text == 'data: {"name":"first","price":2.0}\n\ndata: {"name":"second","price":0.0}\n\n'


def test_items_go_out_as_they_are_produced_and_a_gone_client_closes_the_generator(app: Catzilla) -> None:
    go_on = threading.Event()
    closed = threading.Event()

    @app.get("/slow")
    async def slow() -> AsyncIterable[int]:
        try:
            yield 1
            while not go_on.is_set():  # the client has read the first line before this goes on
                await asyncio.sleep(0.01)
            yield 2
            while True:
                await asyncio.sleep(0.01)
                yield 3
        finally:
            closed.set()

    client = TestClient(app)
    with client.stream("GET", "/slow") as r:
        lines = r.iter_lines()
        assert next(lines) == "1"
        go_on.set()
        assert next(lines) == "2"
        assert next(lines) == "3"
    deadline = time.monotonic() + 5
    while not closed.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert closed.is_set(), "the handler's generator was not closed when its client left"


def test_another_response_class_gets_the_raw_chunks(app: Catzilla) -> None:
    class PNGStream(StreamingResponse):
        media_type = "image/png"

    @app.get("/png", response_class=PNGStream)
    def png():
        yield b"\x89PNG"
        yield b"rest"

    r = TestClient(app).get("/png")
    assert (r.headers["content-type"], r.content) == ("image/png", b"\x89PNGrest")


def test_openapi_item_schemas_and_media_types(app: Catzilla) -> None:
    @app.get("/jsonl")
    async def jsonl() -> AsyncIterable[Item]:
        yield Item(name="a")

    @app.get("/any")
    def any_items():
        yield 1

    @app.get("/sse", response_class=EventSourceResponse)
    async def sse() -> AsyncIterable[Item]:
        yield Item(name="a")

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterable[ServerSentEvent]:
        yield ServerSentEvent(data=1)

    @app.get("/raw", response_class=StreamingResponse)
    def raw():
        yield b"x"

    @app.get("/page", response_class=HTMLResponse)
    def page():
        return "<p>hi</p>"

    paths = TestClient(app).get("/openapi.json").json()["paths"]

    def content(path: str) -> object:
        return paths[path]["get"]["responses"]["200"].get("content")

    assert content("/jsonl") == {"application/jsonl": {"itemSchema": {"$ref": "#/components/schemas/Item"}}}
    assert content("/any") == {"application/jsonl": {"itemSchema": {}}}
    event = {
        "type": "object",
        "properties": {
            "data": {"type": "string"},
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        },
    }
    assert content("/events") == {"text/event-stream": {"itemSchema": event}}
    sse_item = paths["/sse"]["get"]["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
    assert sse_item["required"] == ["data"]
    assert sse_item["properties"]["data"] == {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": "#/components/schemas/Item"},
    }
    assert content("/raw") is None  # a class without a media type: no content, as FastAPI writes it
    assert content("/page") == {"text/html": {"schema": {"type": "string"}}}
