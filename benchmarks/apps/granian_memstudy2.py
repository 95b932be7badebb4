"""Granian (RSGI, no framework) — the app of memory study v2 (benchmarks/memstudy2.py), for scale.

The endpoints of catzilla_memstudy2.py, on the workloads of _memwork.py.
Granian's Rust side allocates with the jemalloc its wheel links; Python's
objects are glibc's malloc and pymalloc, whose figures /__memstats gives.
"""

import asyncio
import json
import os
import sys
from typing import Any
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _memwork import WAIT_S, Churn, answer, held, make_doc, peer_memstats

JSON = [("content-type", "application/json")]
OCTETS = [("content-type", "application/octet-stream")]
CHURN = Churn()
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _json(proto: Any, data: object) -> None:
    proto.response_bytes(200, JSON, _dumps(data).encode())


async def app(scope: Any, proto: Any) -> None:
    path, method = scope.path, scope.method
    if method == "GET" and path == "/doc":
        _json(proto, make_doc())
    elif method == "POST" and path == "/mem":
        received = len(await proto())  # the handler reads the whole body
        size = int(parse_qs(scope.query_string).get("size", ["1024"])[0])
        proto.response_bytes(200, OCTETS, answer(size) if received >= 0 else b"")
    elif method == "GET" and path == "/churn":
        _json(proto, CHURN.step())
    elif method == "GET" and path == "/wait":
        kept = held()
        await asyncio.sleep(WAIT_S)
        _json(proto, {"held": len(kept)})
    elif method == "GET" and path == "/__memstats":
        _json(proto, peer_memstats("glibc + pymalloc (Rust side: jemalloc)"))
    else:
        proto.response_bytes(404, JSON, b'{"detail":"Not Found"}')
