"""A raw RSGI app for Granian (no framework): Granian's own fast path."""

import asyncio
import json
import os
import sys
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
JSON_HEADERS = [("content-type", "application/json")]


async def app(scope, proto):
    path = scope.path
    method = scope.method
    if method == "GET":
        if path == "/":
            return proto.response_bytes(200, JSON_HEADERS, _dumps(HELLO).encode())
        if path.startswith("/users/"):
            try:
                user_id = int(path[7:])
            except ValueError:
                return proto.response_bytes(422, JSON_HEADERS, b'{"detail":"invalid id"}')
            return proto.response_bytes(200, JSON_HEADERS, _dumps({"user_id": user_id}).encode())
        if path == "/search":
            qs = parse_qs(scope.query_string)
            q = qs.get("q", [""])[0]
            limit = int(qs.get("limit", ["10"])[0])
            return proto.response_bytes(200, JSON_HEADERS, _dumps({"q": q, "limit": limit}).encode())
        if path == "/large":
            return proto.response_bytes(200, JSON_HEADERS, _dumps(LARGE).encode())
        if path == "/async":
            await asyncio.sleep(0)
            return proto.response_bytes(200, JSON_HEADERS, _dumps(HELLO).encode())
    elif method == "POST" and path == "/echo":
        body = await proto()
        return proto.response_bytes(200, JSON_HEADERS, _dumps(json.loads(body)).encode())
    proto.response_bytes(404, JSON_HEADERS, b'{"detail":"Not Found"}')
