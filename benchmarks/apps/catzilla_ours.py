"""Catzilla (this repo) — the benchmark routes. Run with the repo's .venv python.

Port from $BENCH_PORT; allocator from $BENCH_ALLOCATOR (jemalloc|malloc, default jemalloc).
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE  # noqa: E402

from catzilla import Catzilla, Request  # noqa: E402

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


if __name__ == "__main__":
    app.listen(port=int(os.environ.get("BENCH_PORT", "8000")), host="127.0.0.1")
