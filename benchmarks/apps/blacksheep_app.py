"""BlackSheep — the benchmark routes (run with uvicorn, uvloop + httptools)."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE
from blacksheep import Application, Request, json

app = Application()
get = app.router.get
post = app.router.post


@get("/")
async def hello():
    return json(HELLO)


@get("/users/{id}")
async def user(id: int):
    return json({"user_id": id})


@get("/search")
async def search(q: str = "", limit: int = 10):
    return json({"q": q, "limit": limit})


@post("/echo")
async def echo(request: Request):
    return json(await request.json())


@get("/large")
async def large():
    return json(LARGE)


@get("/async")
async def async_hello():
    await asyncio.sleep(0)
    return json(HELLO)
