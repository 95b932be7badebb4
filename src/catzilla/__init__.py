"""Catzilla: a Python web framework whose hot path is C."""

from catzilla.app import Catzilla
from catzilla.exceptions import HTTPException, RequestValidationError
from catzilla.request import Request
from catzilla.response import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from catzilla.routing import Route

__all__ = [
    "Catzilla",
    "HTMLResponse",
    "HTTPException",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "Route",
]
__version__ = "0.3.0"
