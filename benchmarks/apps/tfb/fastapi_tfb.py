"""FastAPI on uvicorn: the TechEmpower test types, asyncpg and Starlette's Jinja2Templates
(TFB's own FastAPI entry uses the same driver and orjson-less JSON)."""

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager
from operator import itemgetter
from random import randint, sample

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import asyncpg
from _tfb_common import (
    ADDED_FORTUNE,
    HELLO,
    POOL_SIZE,
    READ_ROW_SQL,
    SELECT_FORTUNES_SQL,
    TEMPLATES_DIR,
    UPDATE_SQL,
    query_count,
)
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=TEMPLATES_DIR)
pool = None
cache = {}


@asynccontextmanager
async def lifespan(app):
    global pool
    pool = await asyncpg.create_pool(min_size=POOL_SIZE, max_size=POOL_SIZE)
    async with pool.acquire() as conn:
        for row in await conn.fetch("SELECT id, randomnumber FROM world"):
            cache[row[0]] = {"id": row[0], "randomNumber": row[1]}
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/json")
async def json_serialization():
    return HELLO


@app.get("/plaintext")
async def plaintext():
    return PlainTextResponse(b"Hello, World!")


@app.get("/db")
async def single_query():
    async with pool.acquire() as conn:
        row = await conn.fetchrow(READ_ROW_SQL, randint(1, 10000))
    return {"id": row[0], "randomNumber": row[1]}


@app.get("/queries")
async def multiple_queries(queries: str = "1"):
    ids = sample(range(1, 10001), query_count(queries))
    async with pool.acquire() as conn:
        stmt = await conn.prepare(READ_ROW_SQL)
        out = []
        for i in ids:
            row = await stmt.fetchrow(i)
            out.append({"id": row[0], "randomNumber": row[1]})
    return out


@app.get("/fortunes", response_class=HTMLResponse)
async def fortunes(request: Request):
    async with pool.acquire() as conn:
        rows = [tuple(r) for r in await conn.fetch(SELECT_FORTUNES_SQL)]
    rows.append((0, ADDED_FORTUNE))
    rows.sort(key=itemgetter(1))
    return templates.TemplateResponse(request, "fortune.html", {"fortunes": rows})


@app.get("/updates")
async def updates(queries: str = "1"):
    ids = sorted(sample(range(1, 10001), query_count(queries)))
    worlds = []
    async with pool.acquire() as conn:
        stmt = await conn.prepare(READ_ROW_SQL)
        for i in ids:
            await stmt.fetchval(i)
            worlds.append((i, randint(1, 10000)))
        await conn.executemany(UPDATE_SQL, worlds)
    return [{"id": i, "randomNumber": n} for i, n in worlds]


@app.get("/cached-queries")
async def cached_queries(count: str = "1"):
    return [cache[i] for i in sample(range(1, 10001), query_count(count))]
