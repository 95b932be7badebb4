"""Answer 400 to requests whose ``Host`` is not one of the app's, as Starlette's."""

from __future__ import annotations

from collections.abc import Sequence

from catzilla.middleware.base import Middleware
from catzilla.request import Request
from catzilla.response import PlainTextResponse, RedirectResponse, Response


class TrustedHostMiddleware(Middleware):
    """``allowed_hosts``: names, ``*.example.com`` for any subdomain, or ``*`` for any.
    With ``www_redirect`` (the default), ``example.com`` is redirected to
    ``www.example.com`` when only the latter is allowed."""

    def __init__(self, allowed_hosts: Sequence[str] | None = None, www_redirect: bool = True) -> None:
        hosts = list(allowed_hosts or ["*"])
        for pattern in hosts:
            if "*" in pattern[1:]:
                raise ValueError("a wildcard is only allowed at the start of a host pattern")
            if pattern.startswith("*") and pattern != "*" and not pattern.startswith("*."):
                raise ValueError("a wildcard host pattern must be '*' or start with '*.'")
        self.allowed_hosts = hosts
        self.allow_any = "*" in hosts
        self.www_redirect = www_redirect

    def _allowed(self, host: str) -> bool:
        return any(
            host == pattern or (pattern.startswith("*") and host.endswith(pattern[1:]))
            for pattern in self.allowed_hosts
        )

    def before(self, request: Request) -> Response | None:
        if self.allow_any:
            return None
        host = request.headers.get("host", "").split(":")[0]
        if self._allowed(host):
            return None
        if self.www_redirect and self._allowed("www." + host):
            url = request.url
            query = f"?{url.query}" if url.query else ""
            return RedirectResponse(f"{url.scheme}://www.{url.netloc}{request.path}{query}")
        return PlainTextResponse("Invalid host header", status_code=400)
