"""Robyn (--processes 1 --workers 1): the TechEmpower test types with asyncpg and
Jinja2. The pool is made by the first request that needs it, so that it lives
on the loop the async handlers run on."""

from __future__ import annotations

import asyncio
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
from robyn import Request, Response, Robyn, jsonify

app = Robyn(__file__)
template = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True).get_template(
    "fortune.html"
)
JSON = {"Content-Type": "application/json"}
state: dict = {"pool": None, "ready": None}
cache: dict[int, dict[str, int]] = {}


async def _setup() -> None:
    pool = await asyncpg.create_pool(min_size=POOL_SIZE, max_size=POOL_SIZE)
    async with pool.acquire() as conn:
        for row in await conn.fetch("SELECT id, randomnumber FROM world"):
            cache[row[0]] = {"id": row[0], "randomNumber": row[1]}
    state["pool"] = pool


async def get_pool():
    if state["pool"] is None:
        if state["ready"] is None:
            state["ready"] = asyncio.ensure_future(_setup())
        await state["ready"]
    return state["pool"]


def _json(data) -> Response:
    return Response(status_code=200, headers=JSON, description=jsonify(data))


@app.get("/json")
def json_serialization():
    return HELLO


@app.get("/plaintext")
def plaintext():
    return "Hello, World!"


@app.get("/db")
async def single_query():
    pool = await get_pool()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(READ_ROW_SQL, randint(1, 10000))
    return {"id": row[0], "randomNumber": row[1]}


@app.get("/queries")
async def multiple_queries(request: Request):
    ids = sample(range(1, 10001), query_count(request.query_params.get("queries", "1")))
    pool = await get_pool()
    out = []
    async with pool.acquire() as conn:
        stmt = await conn.prepare(READ_ROW_SQL)
        for i in ids:
            row = await stmt.fetchrow(i)
            out.append({"id": row[0], "randomNumber": row[1]})
    return _json(out)


@app.get("/fortunes")
async def fortunes():
    pool = await get_pool()
    async with pool.acquire() as conn:
        rows = [tuple(r) for r in await conn.fetch(SELECT_FORTUNES_SQL)]
    rows.append((0, ADDED_FORTUNE))
    rows.sort(key=itemgetter(1))
    return Response(
        status_code=200,
        headers={"Content-Type": "text/html; charset=utf-8"},
        description=template.render(fortunes=rows),
    )


@app.get("/updates")
async def updates(request: Request):
    ids = sorted(sample(range(1, 10001), query_count(request.query_params.get("queries", "1"))))
    pool = await get_pool()
    worlds = []
    async with pool.acquire() as conn:
        stmt = await conn.prepare(READ_ROW_SQL)
        for i in ids:
            await stmt.fetchval(i)
            worlds.append((i, randint(1, 10000)))
        await conn.executemany(UPDATE_SQL, worlds)
    return _json([{"id": i, "randomNumber": n} for i, n in worlds])


@app.get("/cached-queries")
async def cached_queries(request: Request):
    n = query_count(request.query_params.get("count", "1"))
    if state["pool"] is None:
        await get_pool()
    return _json([cache[i] for i in sample(range(1, 10001), n)])


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=int(os.environ.get("BENCH_PORT", "8000")), _check_port=False)
