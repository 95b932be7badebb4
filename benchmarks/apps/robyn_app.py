"""Robyn — the benchmark routes (single process, one worker: --processes 1 --workers 1)."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE
from robyn import Request, Robyn

app = Robyn(__file__)


@app.get("/")
def hello():
    return HELLO


@app.get("/users/:id")
def user(request: Request):
    return {"user_id": int(request.path_params["id"])}


@app.get("/search")
def search(request: Request):
    q = request.query_params.get("q", "")
    limit = int(request.query_params.get("limit", "10"))
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
    app.start(host="127.0.0.1", port=int(os.environ.get("BENCH_PORT", "8000")), _check_port=False)
