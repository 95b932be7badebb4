"""CORS, with Starlette's options and behaviour.

Preflights (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
are answered here: 200 when allowed, 400 otherwise. Other requests with an
allowed ``Origin`` get ``Access-Control-Allow-Origin`` (and credentials and
exposed headers as configured).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from catzilla.middleware.base import Middleware
from catzilla.request import Request
from catzilla.response import PlainTextResponse, Response

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
SAFELISTED_HEADERS = {"accept", "accept-language", "content-language", "content-type"}


class CORSMiddleware(Middleware):
    def __init__(
        self,
        allow_origins: Sequence[str] = (),
        allow_methods: Sequence[str] = ("GET",),
        allow_headers: Sequence[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        expose_headers: Sequence[str] = (),
        max_age: int = 600,
    ) -> None:
        if "*" in allow_methods:
            allow_methods = ALL_METHODS
        self.allow_all_origins = "*" in allow_origins
        self.allow_all_headers = "*" in allow_headers
        self.allow_origins = set(allow_origins)
        self.allow_methods = [m.upper() for m in allow_methods]
        self.allow_headers = sorted(SAFELISTED_HEADERS | {h.lower() for h in allow_headers})
        self.allow_credentials = allow_credentials
        self.origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        self.expose_headers = list(expose_headers)
        self.max_age = max_age
        self.explicit_origin = not self.allow_all_origins or allow_credentials

    def is_allowed_origin(self, origin: str) -> bool:
        if self.allow_all_origins:
            return True
        if self.origin_regex is not None and self.origin_regex.fullmatch(origin):
            return True
        return origin in self.allow_origins

    def before(self, request: Request) -> Response | None:
        headers = request.headers
        if request.method != "OPTIONS" or "origin" not in headers or "access-control-request-method" not in headers:
            return None
        origin = headers["origin"]
        requested_method = headers["access-control-request-method"]
        requested_headers = headers.get("access-control-request-headers")
        out = {"Vary": "Origin"} if self.explicit_origin else {}
        out["Access-Control-Allow-Methods"] = ", ".join(self.allow_methods)
        out["Access-Control-Max-Age"] = str(self.max_age)
        if self.allow_credentials:
            out["Access-Control-Allow-Credentials"] = "true"
        failures = []
        if self.is_allowed_origin(origin):
            out["Access-Control-Allow-Origin"] = origin if self.explicit_origin else "*"
        else:
            failures.append("origin")
        if requested_method.upper() not in self.allow_methods:
            failures.append("method")
        if self.allow_all_headers and requested_headers is not None:
            out["Access-Control-Allow-Headers"] = requested_headers
        else:
            out["Access-Control-Allow-Headers"] = ", ".join(self.allow_headers)
            if requested_headers:
                for h in requested_headers.split(","):
                    if h.strip().lower() not in self.allow_headers:
                        failures.append("headers")
                        break
        if failures:
            return PlainTextResponse("Disallowed CORS " + ", ".join(failures), status_code=400, headers=out)
        return PlainTextResponse("OK", status_code=200, headers=out)

    def after(self, request: Request, response: Response) -> None:
        origin = request.headers.get("origin")
        if origin is None or not self.is_allowed_origin(origin):
            return None
        h = response.headers
        if self.allow_all_origins and not self.explicit_origin and "cookie" not in request.headers:
            h["Access-Control-Allow-Origin"] = "*"
        else:
            h["Access-Control-Allow-Origin"] = origin
            vary = h.get("vary")
            h["Vary"] = f"{vary}, Origin" if vary else "Origin"
        if self.allow_credentials:
            h["Access-Control-Allow-Credentials"] = "true"
        if self.expose_headers:
            h["Access-Control-Expose-Headers"] = ", ".join(self.expose_headers)
        return None
