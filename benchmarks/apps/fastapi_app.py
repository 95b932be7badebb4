"""FastAPI — the benchmark routes (run with uvicorn, uvloop + httptools)."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel

app = FastAPI()


@app.get("/")
async def hello():
    return HELLO


@app.get("/users/{id}")
async def user(id: int):
    return {"user_id": id}


@app.get("/search")
async def search(q: str = "", limit: int = 10):
    return {"q": q, "limit": limit}


@app.post("/echo")
async def echo(request: Request):
    return await request.json()


@app.get("/large")
async def large():
    return LARGE


@app.get("/async")
async def async_hello():
    await asyncio.sleep(0)
    return HELLO


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.post("/items")
async def create_item(item: Item, q: str, limit: int = Query(10, ge=1, le=100)) -> Item:
    return item
