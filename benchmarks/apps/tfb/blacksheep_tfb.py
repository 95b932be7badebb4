"""BlackSheep on uvicorn: the TechEmpower test types, asyncpg and Jinja2
(TFB's own BlackSheep entry uses the same driver)."""

from __future__ import annotations

import os
import sys
from operator import itemgetter
from random import randint, sample

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import asyncpg
import jinja2
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
from blacksheep import Application, Request, Response, json
from blacksheep.contents import Content

app = Application()
get = app.router.get
template = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True).get_template(
    "fortune.html"
)
db = {"pool": None}
cache = {}


async def startup(application):
    pool = db["pool"] = await asyncpg.create_pool(min_size=POOL_SIZE, max_size=POOL_SIZE)
    async with pool.acquire() as conn:
        for row in await conn.fetch("SELECT id, randomnumber FROM world"):
            cache[row[0]] = {"id": row[0], "randomNumber": row[1]}


async def shutdown(application):
    await db["pool"].close()


app.on_start += startup
app.on_stop += shutdown


def _query_arg(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None


@get("/json")
async def json_serialization(request: Request):
    return json(HELLO)


@get("/plaintext")
async def plaintext(request: Request):
    return Response(200, content=Content(b"text/plain", b"Hello, World!"))


@get("/db")
async def single_query(request: Request):
    async with db["pool"].acquire() as conn:
        row = await conn.fetchrow(READ_ROW_SQL, randint(1, 10000))
    return json({"id": row[0], "randomNumber": row[1]})


@get("/queries")
async def multiple_queries(request: Request):
    ids = sample(range(1, 10001), query_count(_query_arg(request, "queries")))
    out = []
    async with db["pool"].acquire() as conn:
        stmt = await conn.prepare(READ_ROW_SQL)
        for i in ids:
            row = await stmt.fetchrow(i)
            out.append({"id": row[0], "randomNumber": row[1]})
    return json(out)


@get("/fortunes")
async def fortunes(request: Request):
    async with db["pool"].acquire() as conn:
        rows = [tuple(r) for r in await conn.fetch(SELECT_FORTUNES_SQL)]
    rows.append((0, ADDED_FORTUNE))
    rows.sort(key=itemgetter(1))
    body = template.render(fortunes=rows).encode()
    return Response(200, content=Content(b"text/html; charset=utf-8", body))


@get("/updates")
async def updates(request: Request):
    ids = sorted(sample(range(1, 10001), query_count(_query_arg(request, "queries"))))
    worlds = []
    async with db["pool"].acquire() as conn:
        stmt = await conn.prepare(READ_ROW_SQL)
        for i in ids:
            await stmt.fetchval(i)
            worlds.append((i, randint(1, 10000)))
        await conn.executemany(UPDATE_SQL, worlds)
    return json([{"id": i, "randomNumber": n} for i, n in worlds])


@get("/cached-queries")
async def cached_queries(request: Request):
    return json([cache[i] for i in sample(range(1, 10001), query_count(_query_arg(request, "count")))])
