"""catzilla==0.2.3 from PyPI (the previous generation) — the benchmark routes.

Its API differs from this repo's: handlers take the request first, typed
path/query parameters come through Path()/Query(), and dicts become JSON.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO, LARGE

from catzilla import Catzilla, JSONResponse, Path, Query, Request

app = Catzilla(production=True, show_banner=False, log_requests=False)


@app.get("/")
def hello(request: Request):
    return JSONResponse(HELLO)


@app.get("/users/{id}")
def user(request: Request, id: int = Path(...)):
    return JSONResponse({"user_id": id})


@app.get("/search")
def search(request: Request, q: str = Query(""), limit: int = Query(10)):
    return JSONResponse({"q": q, "limit": limit})


@app.post("/echo")
def echo(request: Request):
    return JSONResponse(request.json())


@app.get("/large")
def large(request: Request):
    return JSONResponse(LARGE)


@app.get("/async")
async def async_hello(request: Request):
    await asyncio.sleep(0)
    return JSONResponse(HELLO)


if __name__ == "__main__":
    app.listen(port=int(os.environ.get("BENCH_PORT", "8000")), host="127.0.0.1")
