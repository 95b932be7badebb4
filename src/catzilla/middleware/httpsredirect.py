"""Redirect plain-HTTP requests to HTTPS (307, same host and path), as Starlette's."""

from __future__ import annotations

from catzilla.middleware.base import Middleware
from catzilla.request import Request
from catzilla.response import RedirectResponse, Response


class HTTPSRedirectMiddleware(Middleware):
    """Every ``http://`` request is answered with a 307 to its ``https://`` URL.

    Catzilla serves plain HTTP: put it behind a TLS proxy that says so
    (``X-Forwarded-Proto: https``, read here) and this redirects the rest."""

    def before(self, request: Request) -> Response | None:
        url = request.url
        if url.scheme != "http" or request.headers.get("x-forwarded-proto", "").lower() == "https":
            return None
        host, _, port = url.netloc.partition(":")
        netloc = host if port in ("", "80", "443") else url.netloc
        query = f"?{url.query}" if url.query else ""
        return RedirectResponse(f"https://{netloc}{request.path}{query}", status_code=307)
