"""Catzilla (this repo) — the memory-study app.

POST /mem?size=N reads the request body (up to 2 MiB) and answers N bytes;
GET /__memstats returns app.get_memory_stats(). The allocator comes from
$BENCH_ALLOCATOR (jemalloc|malloc); everything else is the product's default.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import BLOCK

from catzilla import Catzilla, Request

ALLOCATOR = os.environ.get("BENCH_ALLOCATOR", "jemalloc")
app = Catzilla(use_jemalloc=ALLOCATOR == "jemalloc", production=True)


@app.get("/")
def hello():
    return {"message": "Hello, World!"}


@app.post("/mem")
def mem(request: Request, size: int = 1024):
    received = len(request.body)  # the handler reads the whole body
    size = max(0, min(size, len(BLOCK)))
    return BLOCK[:size] if received >= 0 else b""


@app.get("/__memstats")
def memstats():
    return app.get_memory_stats()


if __name__ == "__main__":
    app.listen(port=int(os.environ.get("BENCH_PORT", "8000")), host="127.0.0.1", max_body_size=2 * 1024 * 1024)
