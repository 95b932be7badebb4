"""Catzilla (this repo): hello world with $BENCH_MW middleware: "none", "native"
(Catzilla's own Middleware adding the header), "asgi" (the pure ASGI
HeaderMiddleware of _asgi_header.py, via app.add_middleware). Port from
$BENCH_PORT; with $BENCH_ASGI_SERVER=1 the module is served by uvicorn instead
(``app`` is an ASGI app)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _asgi_header import HeaderMiddleware
from _payload import HELLO

from catzilla import Catzilla
from catzilla.middleware import Middleware


class NativeHeader(Middleware):
    def after(self, request, response):
        response.headers["x-bench"] = "1"


app = Catzilla(production=True)
mode = os.environ.get("BENCH_MW", "none")
if mode == "native":
    app.add_middleware(NativeHeader)
elif mode == "asgi":
    app.add_middleware(HeaderMiddleware)
elif mode != "none":
    raise SystemExit(f"BENCH_MW must be none, native or asgi, got {mode!r}")


@app.get("/")
def hello():
    return HELLO


if __name__ == "__main__":
    app.listen(port=int(os.environ["BENCH_PORT"]), host="127.0.0.1")
