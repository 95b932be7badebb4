"""FastAPI: hello world with $BENCH_MW middleware: "none" or "asgi" (the pure
ASGI HeaderMiddleware of _asgi_header.py, via app.add_middleware). Run with
uvicorn (uvloop + httptools)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _asgi_header import HeaderMiddleware
from _payload import HELLO
from fastapi import FastAPI

app = FastAPI()
mode = os.environ.get("BENCH_MW", "none")
if mode == "asgi":
    app.add_middleware(HeaderMiddleware)
elif mode != "none":
    raise SystemExit(f"BENCH_MW must be none or asgi, got {mode!r}")


@app.get("/")
async def hello():
    return HELLO
