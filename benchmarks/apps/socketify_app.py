"""Socketify (uWebSockets) — the benchmark routes.

Socketify's default serializer is json.dumps with spaces; it is set to the
compact form (its documented json_serializer hook) so the bytes match.
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE
from socketify import App


class CompactJSON:
    dumps = staticmethod(json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode)
    loads = staticmethod(json.loads)


app = App()
app.json_serializer(CompactJSON)


def hello(res, req):
    res.send(HELLO)


def user(res, req):
    res.send({"user_id": int(req.get_parameter(0))})


def search(res, req):
    q = req.get_query("q") or ""
    limit = int(req.get_query("limit") or 10)
    res.send({"q": q, "limit": limit})


def echo(res, req):
    # Socketify's documented on_data pattern. (The awaitable `await res.get_json()`
    # aborts the process under keep-alive POST load in 0.0.31: "ffi.from_handle()
    # detected that the address passed points to garbage".)
    chunks = []

    def on_data(res, chunk, is_end):
        if chunk:
            chunks.append(chunk)
        if is_end:
            res.cork_end(json.loads(b"".join(chunks)))

    res.on_data(on_data)


def large(res, req):
    res.send(LARGE)


async def async_hello(res, req):
    await asyncio.sleep(0)
    res.cork_end(HELLO)


app.get("/", hello)
app.get("/users/:id", user)
app.get("/search", search)
app.post("/echo", echo)
app.get("/large", large)
app.get("/async", async_hello)

if __name__ == "__main__":
    port = int(os.environ.get("BENCH_PORT", "8000"))
    app.listen({"port": port, "host": "127.0.0.1"}, lambda config: print(f"listening on {port}", flush=True))
    app.run()
