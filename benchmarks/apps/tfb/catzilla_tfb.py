"""Catzilla (this repo): the TechEmpower test types.

$TFB_DRIVER picks the database side: ``asyncpg`` (default: async handlers, one
asyncpg pool on the asyncio loop the handlers run on) or ``psycopg`` (psycopg 3
in sync handlers: one connection and one reused cursor per thread, as the
handlers move to Catzilla's thread pool once they are seen blocking on the
socket). /json and /plaintext are sync handlers with no database in both.
PostgreSQL from the libpq variables ($PGHOST, $PGPORT, ...); port from
$BENCH_PORT.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import asynccontextmanager
from operator import itemgetter
from random import randint, sample
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _tfb_common import (
    ADDED_FORTUNE,
    HELLO,
    POOL_SIZE,
    READ_ROW_SQL,
    READ_ROW_SQL_PSYCOPG,
    SELECT_FORTUNES_SQL,
    TEMPLATES_DIR,
    UPDATE_SQL,
    UPDATE_SQL_PSYCOPG,
    query_count,
)

from catzilla import Catzilla, Request
from catzilla.responses import HTMLResponse, PlainTextResponse
from catzilla.templating import Jinja2Templates

DRIVER = os.environ.get("TFB_DRIVER", "asyncpg")
templates = Jinja2Templates(directory=TEMPLATES_DIR)
cache: dict[int, dict[str, int]] = {}


def _world(row: Any) -> dict[str, int]:
    return {"id": row[0], "randomNumber": row[1]}


if DRIVER == "asyncpg":
    import asyncpg

    pool: Any = None

    @asynccontextmanager
    async def lifespan(app: Catzilla):
        global pool
        pool = await asyncpg.create_pool(min_size=POOL_SIZE, max_size=POOL_SIZE)
        async with pool.acquire() as conn:
            for row in await conn.fetch("SELECT id, randomnumber FROM world"):
                cache[row[0]] = _world(row)
        yield
        await pool.close()

    app = Catzilla(production=True, lifespan=lifespan)

    @app.get("/db")
    async def single_query():
        async with pool.acquire() as conn:
            return _world(await conn.fetchrow(READ_ROW_SQL, randint(1, 10000)))

    @app.get("/queries")
    async def multiple_queries(queries: str = "1"):
        ids = sample(range(1, 10001), query_count(queries))
        async with pool.acquire() as conn:
            stmt = await conn.prepare(READ_ROW_SQL)
            return [_world(await stmt.fetchrow(i)) for i in ids]

    @app.get("/fortunes", response_class=HTMLResponse)
    async def fortunes(request: Request):
        async with pool.acquire() as conn:
            rows = [tuple(r) for r in await conn.fetch(SELECT_FORTUNES_SQL)]
        rows.append((0, ADDED_FORTUNE))
        rows.sort(key=itemgetter(1))
        return templates.TemplateResponse(request, "fortune.html", {"fortunes": rows})

    @app.get("/updates")
    async def updates(queries: str = "1"):
        # sorted ids: concurrent batches lock rows in the same order (no deadlocks)
        ids = sorted(sample(range(1, 10001), query_count(queries)))
        worlds = []
        async with pool.acquire() as conn:
            stmt = await conn.prepare(READ_ROW_SQL)
            for i in ids:
                await stmt.fetchval(i)  # each row read, as TFB requires, before the batch update
                worlds.append((i, randint(1, 10000)))
            await conn.executemany(UPDATE_SQL, worlds)
        return [{"id": i, "randomNumber": n} for i, n in worlds]

else:
    import psycopg

    local = threading.local()

    def _cursor() -> psycopg.Cursor[Any]:
        """This thread's cursor, on its own connection (made on first use), reused by every query."""
        cur = getattr(local, "cur", None)
        if cur is None:
            # prepare_threshold=0: every statement server-side prepared from its first use
            conn = psycopg.connect(autocommit=True, prepare_threshold=0)
            cur = local.cur = conn.cursor()
        return cur

    @asynccontextmanager
    async def lifespan(app: Catzilla):
        with psycopg.connect(autocommit=True) as conn:
            for row in conn.execute("SELECT id, randomnumber FROM world"):
                cache[row[0]] = _world(row)
        yield

    app = Catzilla(production=True, lifespan=lifespan)

    @app.get("/db")
    def single_query():
        return _world(_cursor().execute(READ_ROW_SQL_PSYCOPG, (randint(1, 10000),)).fetchone())

    @app.get("/queries")
    def multiple_queries(queries: str = "1"):
        cur = _cursor()
        return [
            _world(cur.execute(READ_ROW_SQL_PSYCOPG, (i,)).fetchone())
            for i in sample(range(1, 10001), query_count(queries))
        ]

    @app.get("/fortunes", response_class=HTMLResponse)
    def fortunes(request: Request):
        rows = _cursor().execute(SELECT_FORTUNES_SQL).fetchall()
        rows.append((0, ADDED_FORTUNE))
        rows.sort(key=itemgetter(1))
        return templates.TemplateResponse(request, "fortune.html", {"fortunes": rows})

    @app.get("/updates")
    def updates(queries: str = "1"):
        cur = _cursor()
        ids = sorted(sample(range(1, 10001), query_count(queries)))
        worlds = []
        for i in ids:
            cur.execute(READ_ROW_SQL_PSYCOPG, (i,)).fetchone()
            worlds.append((randint(1, 10000), i))
        cur.executemany(UPDATE_SQL_PSYCOPG, worlds)
        return [{"id": i, "randomNumber": n} for n, i in worlds]


@app.get("/json")
def json_serialization():
    return HELLO


@app.get("/plaintext", response_class=PlainTextResponse)
def plaintext():
    return PlainTextResponse(b"Hello, World!")


@app.get("/cached-queries")
def cached_queries(count: str = "1"):
    return [cache[i] for i in sample(range(1, 10001), query_count(count))]


if __name__ == "__main__":
    # TFB_WORKERS: benchmarks/workers.py's 1 and 2 worker processes
    app.listen(
        port=int(os.environ.get("BENCH_PORT", "8000")),
        host="127.0.0.1",
        workers=int(os.environ.get("TFB_WORKERS", "1")),
    )
