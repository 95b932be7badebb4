"""Granian, raw RSGI: the TechEmpower test types with asyncpg and Jinja2, no
framework (as TFB's own Granian RSGI entry: the pool made in ``__rsgi_init__``
on the worker's loop)."""

from __future__ import annotations

import json
import os
import sys
from operator import itemgetter
from random import randint, sample
from urllib.parse import parse_qs

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

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
JSON = [("content-type", "application/json")]
TEXT = [("content-type", "text/plain")]
HTML = [("content-type", "text/html; charset=utf-8")]
template = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True).get_template(
    "fortune.html"
)


def _arg(scope, name: str) -> str | None:
    values = parse_qs(scope.query_string).get(name)
    return values[0] if values else None


class App:
    def __init__(self) -> None:
        self.pool = None
        self.cache: dict[int, dict[str, int]] = {}

    async def _setup(self) -> None:
        self.pool = await asyncpg.create_pool(min_size=POOL_SIZE, max_size=POOL_SIZE)
        async with self.pool.acquire() as conn:
            for row in await conn.fetch("SELECT id, randomnumber FROM world"):
                self.cache[row[0]] = {"id": row[0], "randomNumber": row[1]}

    def __rsgi_init__(self, loop) -> None:
        loop.run_until_complete(self._setup())

    def __rsgi_del__(self, loop) -> None:
        loop.run_until_complete(self.pool.close())

    async def __rsgi__(self, scope, proto) -> None:
        path = scope.path
        if path == "/json":
            return proto.response_bytes(200, JSON, _dumps(HELLO).encode())
        if path == "/plaintext":
            return proto.response_bytes(200, TEXT, b"Hello, World!")
        if path == "/db":
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(READ_ROW_SQL, randint(1, 10000))
            return proto.response_bytes(200, JSON, _dumps({"id": row[0], "randomNumber": row[1]}).encode())
        if path == "/queries":
            ids = sample(range(1, 10001), query_count(_arg(scope, "queries")))
            out = []
            async with self.pool.acquire() as conn:
                stmt = await conn.prepare(READ_ROW_SQL)
                for i in ids:
                    row = await stmt.fetchrow(i)
                    out.append({"id": row[0], "randomNumber": row[1]})
            return proto.response_bytes(200, JSON, _dumps(out).encode())
        if path == "/fortunes":
            async with self.pool.acquire() as conn:
                rows = [tuple(r) for r in await conn.fetch(SELECT_FORTUNES_SQL)]
            rows.append((0, ADDED_FORTUNE))
            rows.sort(key=itemgetter(1))
            return proto.response_str(200, HTML, template.render(fortunes=rows))
        if path == "/updates":
            ids = sorted(sample(range(1, 10001), query_count(_arg(scope, "queries"))))
            worlds = []
            async with self.pool.acquire() as conn:
                stmt = await conn.prepare(READ_ROW_SQL)
                for i in ids:
                    await stmt.fetchval(i)
                    worlds.append((i, randint(1, 10000)))
                await conn.executemany(UPDATE_SQL, worlds)
            return proto.response_bytes(200, JSON, _dumps([{"id": i, "randomNumber": n} for i, n in worlds]).encode())
        if path == "/cached-queries":
            out = [self.cache[i] for i in sample(range(1, 10001), query_count(_arg(scope, "count")))]
            return proto.response_bytes(200, JSON, _dumps(out).encode())
        return proto.response_bytes(404, JSON, b'{"detail":"Not Found"}')


app = App()
