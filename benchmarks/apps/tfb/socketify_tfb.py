"""Socketify (uWebSockets via CFFI): the TechEmpower test types with asyncpg and
Jinja2. The pool is made by the first request that needs it, on socketify's
own asyncio loop (it has no startup hook that runs on that loop). The request
object is only valid until the handler's first await: its query is read before."""

from __future__ import annotations

import asyncio
import json
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
from socketify import App

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
JSON = b"application/json"
template = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True).get_template(
    "fortune.html"
)
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


def json_serialization(res, req):
    res.send(_dumps(HELLO).encode(), content_type=JSON)


def plaintext(res, req):
    res.send(b"Hello, World!", content_type=b"text/plain")


async def single_query(res, req):
    pool = await get_pool()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(READ_ROW_SQL, randint(1, 10000))
    res.cork_send(_dumps({"id": row[0], "randomNumber": row[1]}).encode(), content_type=JSON)


async def multiple_queries(res, req):
    ids = sample(range(1, 10001), query_count(req.get_query("queries")))
    pool = await get_pool()
    out = []
    async with pool.acquire() as conn:
        stmt = await conn.prepare(READ_ROW_SQL)
        for i in ids:
            row = await stmt.fetchrow(i)
            out.append({"id": row[0], "randomNumber": row[1]})
    res.cork_send(_dumps(out).encode(), content_type=JSON)


async def fortunes(res, req):
    pool = await get_pool()
    async with pool.acquire() as conn:
        rows = [tuple(r) for r in await conn.fetch(SELECT_FORTUNES_SQL)]
    rows.append((0, ADDED_FORTUNE))
    rows.sort(key=itemgetter(1))
    res.cork_send(template.render(fortunes=rows).encode(), content_type=b"text/html; charset=utf-8")


async def updates(res, req):
    ids = sorted(sample(range(1, 10001), query_count(req.get_query("queries"))))
    pool = await get_pool()
    worlds = []
    async with pool.acquire() as conn:
        stmt = await conn.prepare(READ_ROW_SQL)
        for i in ids:
            await stmt.fetchval(i)
            worlds.append((i, randint(1, 10000)))
        await conn.executemany(UPDATE_SQL, worlds)
    res.cork_send(_dumps([{"id": i, "randomNumber": n} for i, n in worlds]).encode(), content_type=JSON)


async def cached_queries(res, req):
    n = query_count(req.get_query("count"))
    if state["pool"] is None:
        await get_pool()
    res.cork_send(_dumps([cache[i] for i in sample(range(1, 10001), n)]).encode(), content_type=JSON)


app = App()
app.get("/json", json_serialization)
app.get("/plaintext", plaintext)
app.get("/db", single_query)
app.get("/queries", multiple_queries)
app.get("/fortunes", fortunes)
app.get("/updates", updates)
app.get("/cached-queries", cached_queries)

if __name__ == "__main__":
    port = int(os.environ.get("BENCH_PORT", "8000"))
    app.listen({"port": port, "host": "127.0.0.1"}, lambda config: print(f"listening on {port}", flush=True))
    app.run()
