"""A server for hostile-input tests: every framing is accepted by some route."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.conftest import RawConn, ServerProcess, start_server

APP = """
import asyncio
from catzilla import Catzilla, Request
app = Catzilla(production=True)

@app.route("/", methods=["GET", "POST", "PUT"])
def root(request: Request):
    return {"method": request.method, "size": len(request.body)}

@app.post("/echo")
def echo(request: Request):
    return request.body

@app.get("/big")
def big(size: int = 1 << 20):
    return b"x" * size

@app.get("/slow")
async def slow(seconds: float = 0.2):
    await asyncio.sleep(seconds)
    return {"slept": seconds}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_server(APP, listen="max_url_length=2048, max_header_size=4096, header_timeout=3") as srv:
        yield srv


def served_normally(port: int) -> bool:
    """A fresh connection gets a normal answer."""
    with RawConn(port) as c:
        return c.request("GET", "/").status == 200
