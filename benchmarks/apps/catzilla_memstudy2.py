"""Catzilla (this repo) — the app of memory study v2 (benchmarks/memstudy2.py).

$BENCH_ALLOCATOR picks the backend (malloc, jemalloc, mimalloc), at the
product's default scope (process: the interpreter's memory too).

    GET  /doc          builds and returns a ~100 KiB JSON document
    POST /mem?size=N   reads the body, answers N bytes
    GET  /churn        replaces an entry of a handler-level LRU of Python objects of variable size
    GET  /wait         async: holds a few objects across an await of 50 ms
    GET  /__memstats   get_memory_stats() plus the governed share of the heap
"""

import asyncio
import contextlib
import os
import re
import sys
import tempfile
from typing import Any

from _memwork import WAIT_S, Churn, answer, glibc_heap, held, make_doc

from catzilla import Catzilla, Request, _core

ALLOCATOR = os.environ.get("BENCH_ALLOCATOR", "jemalloc")
app = Catzilla(allocator=ALLOCATOR, production=True)
CHURN = Churn()


@app.get("/doc")
def doc() -> dict[str, Any]:
    return make_doc()


@app.post("/mem")
def mem(request: Request, size: int = 1024) -> bytes:
    received = len(request.body)  # the handler reads the whole body
    return answer(size) if received >= 0 else b""


@app.get("/churn")
def churn() -> dict[str, int]:
    return CHURN.step()


@app.get("/wait")
async def wait() -> dict[str, int]:
    kept = held()
    await asyncio.sleep(WAIT_S)
    return {"held": len(kept)}


def _pymalloc_arenas() -> tuple[int, int]:
    """(arenas allocated now, arena size) from sys._debugmallocstats (it writes to fd 2)."""
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    current = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    size = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    arena_size = int(size.group(2)) if size else 1 << 20
    return (int(current.group(1).replace(",", "")) if current else 0), arena_size


@app.get("/__memstats")
def memstats() -> dict[str, Any]:
    stats = app.get_memory_stats()
    heap = _core.process_heap_stats()
    arenas, arena_size = _pymalloc_arenas()
    ours = heap["pymalloc_arenas"] if heap else 0
    # governed: what the app's allocator holds live (C core and process heap);
    # the rest: glibc's blocks in use and pymalloc arenas from before the switch
    governed = stats["allocated_bytes"] if heap else 0
    glibc = glibc_heap()
    in_use = int(glibc["in_use_bytes"] or 0)
    others = in_use + (arenas - ours) * arena_size
    stats["governed_share"] = None
    with contextlib.suppress(ZeroDivisionError):
        stats["governed_share"] = governed / (governed + others) if heap else None
    stats["heap_bytes"] = governed + others
    stats["pymalloc_arenas"], stats["pymalloc_arenas_on_heap"] = arenas, ours
    stats["libc_in_use"] = in_use
    stats["glibc"] = glibc  # what glibc still holds beside the app's allocator
    return stats


if __name__ == "__main__":
    app.listen(port=int(os.environ.get("BENCH_PORT", "8000")), host="127.0.0.1", max_body_size=2 * 1024 * 1024)
