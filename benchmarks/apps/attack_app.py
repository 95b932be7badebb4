"""The app that benchmarks/attacks.py and tests/hardening/test_attacks.py attack.

Run with the repo's Python. $ATTACK_PORT (default 0: any free port, the
banner on stderr names it); $ATTACK_LISTEN, a JSON object of listen() limits
(e.g. {"max_connections": 500}).

Routes: `GET /` hello; `GET /big` a 1 MiB body; `POST /upload` a sync
handler that reads the body; `GET /wait` an async handler that sleeps for
an hour unless cancelled; `GET /counters` what the /wait handlers did.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any

from catzilla import Catzilla, Request

BIG = b"x" * (1 << 20)
app = Catzilla(production=True)

# /wait runs as an asyncio task, /counters in the server's step, and the thread
# pool may run others: a lock keeps the three counts consistent with each other.
_lock = threading.Lock()
_counters = {"started": 0, "cancelled": 0, "finally": 0}


def _bump(name: str) -> None:
    with _lock:
        _counters[name] += 1


@app.get("/")
def hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/big")
def big() -> bytes:
    return BIG


@app.post("/upload")
def upload(request: Request) -> dict[str, int]:
    return {"size": len(request.body)}


@app.get("/wait")
async def wait(seconds: float = 3600.0) -> dict[str, float]:
    _bump("started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _bump("cancelled")
        raise
    finally:
        _bump("finally")
    return {"slept": seconds}


@app.get("/counters")
def counters() -> dict[str, int]:
    with _lock:
        return dict(_counters)


if __name__ == "__main__":
    limits: dict[str, Any] = json.loads(os.environ.get("ATTACK_LISTEN", "{}"))
    app.listen(port=int(os.environ.get("ATTACK_PORT", "0")), host="127.0.0.1", **limits)
