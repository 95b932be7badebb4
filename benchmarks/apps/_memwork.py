"""The workloads of memory study v2 (benchmarks/memstudy2.py), defined once for every server.

Standard library only: the Catzilla app and the peers' apps (FastAPI,
Granian) import it from this directory, so each answers the same bytes and
keeps the same objects alive; only the framework around them differs.

    doc    make_doc(): a ~100 KiB JSON document, built per request
    mixed  answer(size): the first `size` bytes of 1 MiB (the body is read whole)
    churn  Churn.step(): replaces an entry of an LRU of variable-size Python objects
    async  held(): objects kept across an await of WAIT_S
"""

from __future__ import annotations

import collections
import ctypes
import random
from typing import Any

from _payload import BLOCK

WAIT_S = 0.05
LRU_SIZE = 20_000


def make_doc() -> dict[str, Any]:
    return {
        "items": [
            {"id": i, "name": f"item-{i}", "tags": ["alpha", "beta", str(i % 7)], "price": i * 1.25, "ok": i % 3 == 0}
            for i in range(900)
        ]
    }


def answer(size: int) -> bytes:
    return BLOCK[: max(0, min(size, len(BLOCK)))]


class Churn:
    """Variable-size strings, dicts and lists replacing each other: the fragmentation case."""

    def __init__(self, size: int = LRU_SIZE, seed: int = 7) -> None:
        self.size = size
        self.rng = random.Random(seed)  # the same sequence of sizes and keys in every server
        self.lru: collections.OrderedDict[int, object] = collections.OrderedDict()

    def step(self) -> dict[str, int]:
        n = self.rng.randrange(1, 4000)
        key = self.rng.randrange(self.size * 2)
        self.lru[key] = ["s" * n, {str(i): i for i in range(n % 64)}, list(range(n % 300))]
        self.lru.move_to_end(key)
        while len(self.lru) > self.size:
            self.lru.popitem(last=False)
        return {"size": len(self.lru)}


def held() -> list[object]:
    return [bytes(2048), {"k": list(range(64))}]


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def glibc_heap() -> dict[str, float | None]:
    """glibc's own figures (mallinfo2): what the process's malloc holds, uses and keeps free.

    fragmentation_percent is the core's formula for glibc (csrc/memory/cz_backend_malloc.c):
    free bytes held in the brk/arena heap over that heap."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    mi = libc.mallinfo2()
    mib = 1024 * 1024
    return {
        "in_use_bytes": float(mi.uordblks + mi.hblkhd),
        "arena_mb": mi.arena / mib,
        "mmapped_mb": mi.hblkhd / mib,
        "free_held_mb": mi.fordblks / mib,
        "top_releasable_mb": mi.keepcost / mib,
        "fragmentation_percent": 100.0 * (mi.arena - mi.uordblks) / mi.arena if mi.arena else None,
    }


def peer_memstats(allocator: str) -> dict[str, Any]:
    """/__memstats of a peer: only glibc's figures (the Python side's heap); no governed share."""
    g = glibc_heap()
    return {
        "allocator": allocator,
        "process_fragmentation_percent": g["fragmentation_percent"],
        "glibc": g,
        "governed_share": None,
    }
