"""Catzilla (this repo) — the benchmark routes. Run with the repo's .venv python.

Port from $BENCH_PORT; allocator from $BENCH_ALLOCATOR (jemalloc|malloc, default jemalloc);
$BENCH_TYPED=1 adds the typed route (pydantic).
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE

from catzilla import Catzilla, Query, Request

app = Catzilla(use_jemalloc=os.environ.get("BENCH_ALLOCATOR", "jemalloc") == "jemalloc", production=True)


@app.get("/")
def hello():
    return HELLO


@app.get("/users/{id}")
def user(id: int):
    return {"user_id": id}


@app.get("/search")
def search(q: str = "", limit: int = 10):
    return {"q": q, "limit": limit}


@app.post("/echo")
def echo(request: Request):
    return request.json()


@app.get("/large")
def large():
    return LARGE


@app.get("/async")
async def async_hello():
    await asyncio.sleep(0)
    return HELLO


if os.environ.get("BENCH_TYPED"):  # pydantic only where the workload needs it: it adds ~10 MiB of RSS
    from pydantic import BaseModel

    class Item(BaseModel):
        name: str
        price: float
        tags: list[str] = []

    @app.post("/items")
    def create_item(item: Item, q: str, limit: int = Query(10, ge=1, le=100)) -> Item:
        return item


if __name__ == "__main__":
    app.listen(port=int(os.environ.get("BENCH_PORT", "8000")), host="127.0.0.1")
