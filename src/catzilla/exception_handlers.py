"""The default exception handlers, as ``fastapi.exception_handlers`` names them:
call them from your own handler to add to the default answer."""

from __future__ import annotations

from typing import Any

from catzilla.encoders import jsonable_encoder
from catzilla.exceptions import HTTPException, RequestValidationError
from catzilla.response import JSONResponse, Response

__all__ = ["http_exception_handler", "request_validation_exception_handler"]


async def http_exception_handler(request: Any, exc: HTTPException) -> Response:
    """``{"detail": exc.detail}`` with the exception's status and headers (no body for 1xx, 204, 304)."""
    headers = getattr(exc, "headers", None) or None
    if exc.status_code < 200 or exc.status_code in (204, 205, 304):
        return Response(None, status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def request_validation_exception_handler(request: Any, exc: RequestValidationError) -> JSONResponse:
    """422 with ``{"detail": exc.errors()}``."""
    return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
