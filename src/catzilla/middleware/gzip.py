"""GZip response bodies of at least ``minimum_size`` bytes for clients that accept it."""

from __future__ import annotations

import gzip as _gzip

from catzilla.middleware.base import Middleware
from catzilla.request import Request
from catzilla.response import Response


class GZipMiddleware(Middleware):
    def __init__(self, minimum_size: int = 500, compresslevel: int = 9) -> None:
        if minimum_size < 0 or not 1 <= compresslevel <= 9:
            raise ValueError("minimum_size must be >= 0 and compresslevel in 1..9")
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel

    def after(self, request: Request, response: Response) -> None:
        # Streamed and file bodies go out as they are (a file may have a .gz of its own).
        if not isinstance(response.body, bytes) or len(response.body) < self.minimum_size:
            return None
        accept = request.headers.get("accept-encoding", "")
        if "gzip" not in accept.lower():
            return None
        h = response.headers
        if "content-encoding" in h or h.get("content-type", "").startswith("text/event-stream"):
            return None
        response.body = _gzip.compress(response.body, self.compresslevel, mtime=0)
        h["Content-Encoding"] = "gzip"
        vary = h.get("vary")
        h["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
        return None
