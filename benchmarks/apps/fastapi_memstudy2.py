"""FastAPI on uvicorn — the app of memory study v2 (benchmarks/memstudy2.py), for scale.

The endpoints of catzilla_memstudy2.py, on the workloads of _memwork.py.
Python's memory is glibc's malloc and pymalloc (no allocator to choose), so
/__memstats gives glibc's figures only.
"""

import asyncio
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _memwork import WAIT_S, Churn, answer, held, make_doc, peer_memstats
from fastapi import FastAPI, Request, Response

app = FastAPI()
CHURN = Churn()


@app.get("/doc")
async def doc() -> dict[str, Any]:
    return make_doc()


@app.post("/mem")
async def mem(request: Request, size: int = 1024) -> Response:
    received = len(await request.body())  # the handler reads the whole body
    return Response(answer(size) if received >= 0 else b"", media_type="application/octet-stream")


@app.get("/churn")
async def churn() -> dict[str, int]:
    return CHURN.step()


@app.get("/wait")
async def wait() -> dict[str, int]:
    kept = held()
    await asyncio.sleep(WAIT_S)
    return {"held": len(kept)}


@app.get("/__memstats")
async def memstats() -> dict[str, Any]:
    return peer_memstats("glibc + pymalloc")
