"""The memory-study workload as a raw ASGI app (for scale, on uvicorn)."""

import os
import sys
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import BLOCK


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] == "POST" and scope["path"] == "/mem":
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        received = len(b"".join(chunks))  # the handler reads the whole body
        size = int(parse_qs(scope["query_string"].decode("latin-1")).get("size", ["1024"])[0])
        body = BLOCK[: max(0, min(size, len(BLOCK)))] if received >= 0 else b""
        ctype = b"application/octet-stream"
    elif scope["path"] == "/":
        body, ctype = b'{"message":"Hello, World!"}', b"application/json"
    else:
        body, ctype = b'{"detail":"Not Found"}', b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
