"""A raw ASGI app (no framework): the floor of the ASGI stack.

Served by uvicorn (uvloop + httptools) and by Granian's ASGI interface.
"""

import asyncio
import json
import os
import sys
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
NOT_FOUND = b'{"detail":"Not Found"}'


async def _send_json(send, body: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    method = scope["method"]
    if method == "GET":
        if path == "/":
            return await _send_json(send, _dumps(HELLO).encode())
        if path.startswith("/users/"):
            try:
                user_id = int(path[7:])
            except ValueError:
                return await _send_json(send, b'{"detail":"invalid id"}', 422)
            return await _send_json(send, _dumps({"user_id": user_id}).encode())
        if path == "/search":
            qs = parse_qs(scope["query_string"].decode("latin-1"))
            q = qs.get("q", [""])[0]
            limit = int(qs.get("limit", ["10"])[0])
            return await _send_json(send, _dumps({"q": q, "limit": limit}).encode())
        if path == "/large":
            return await _send_json(send, _dumps(LARGE).encode())
        if path == "/async":
            await asyncio.sleep(0)
            return await _send_json(send, _dumps(HELLO).encode())
    elif method == "POST" and path == "/echo":
        body = await _read_body(receive)
        return await _send_json(send, _dumps(json.loads(body)).encode())
    await _send_json(send, NOT_FOUND, 404)
