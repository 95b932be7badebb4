"""Middleware: code around handlers, app-wide or per route.

Two shapes, sync or async:

- ``Middleware`` subclasses override ``before(request)`` (return a Response to
  answer without calling the handler) and/or ``after(request, response)``
  (return a Response to replace it, or None to keep it);
- ``BaseHTTPMiddleware`` subclasses, and plain functions registered with
  ``@app.middleware("http")``, take ``(request, call_next)`` as in Starlette.

Built-ins: ``CORSMiddleware``, ``GZipMiddleware``, ``RequestIDMiddleware``.
"""

from catzilla.middleware.base import BaseHTTPMiddleware, Middleware
from catzilla.middleware.cors import CORSMiddleware
from catzilla.middleware.gzip import GZipMiddleware
from catzilla.middleware.request_id import RequestIDMiddleware

__all__ = ["BaseHTTPMiddleware", "CORSMiddleware", "GZipMiddleware", "Middleware", "RequestIDMiddleware"]
