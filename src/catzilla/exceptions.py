"""Exceptions a handler may raise, and how they become responses."""

from __future__ import annotations

import http
import logging
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from catzilla.response import JSONResponse, Response

log = logging.getLogger("catzilla.error")


def is_cancellation(exc: BaseException) -> bool:
    """asyncio.CancelledError, without importing asyncio (sync-only apps never do):
    if asyncio is not loaded, no such error can exist."""
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


class CatzillaError(RuntimeError):
    """An app is set up in a way Catzilla cannot serve (FastAPI's ``FastAPIError``)."""


class CatzillaDeprecationWarning(UserWarning):
    """A deprecated Catzilla feature was used (FastAPI's ``FastAPIDeprecationWarning``)."""


class HTTPException(Exception):
    """Answer with ``status_code`` and ``{"detail": detail}`` (as in FastAPI)."""

    def __init__(self, status_code: int, detail: Any = None, headers: Mapping[str, str] | None = None) -> None:
        if detail is None:
            try:
                detail = http.HTTPStatus(status_code).phrase
            except ValueError:
                detail = "Error"
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"


class RequestValidationError(Exception):
    """A request did not fit what the handler declared: 422, FastAPI's error shape.

    ``errors()`` gives each error's ``loc`` as a tuple (as FastAPI, whose JSON
    answer has lists); ``body`` is the request's body (parsed JSON) or None."""

    def __init__(self, errors: Sequence[Any], *, body: Any = None) -> None:
        super().__init__(errors)
        self._errors = list(errors)
        self.body = body

    def errors(self) -> list[dict[str, Any]]:
        return [
            dict(e, loc=tuple(e["loc"])) if isinstance(e, dict) and isinstance(e.get("loc"), list) else e
            for e in self._errors
        ]


class ResponseValidationError(Exception):
    """A handler's return value did not fit its ``response_model``: a server error (500)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self._errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


ExceptionHandler = Callable[[Any, Exception], Any]


def http_exception_response(exc: HTTPException) -> Response:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def validation_response(exc: RequestValidationError) -> Response:
    return JSONResponse({"detail": exc.errors()}, status_code=422)


def server_error_response(exc: BaseException, show_traceback: bool) -> Response:
    """500. The exception and its traceback (paths, source lines) only when the
    app asked for them (``Catzilla(debug=True)``): by default nothing internal
    reaches the client; the logger ``catzilla.error`` has the traceback."""
    body: dict[str, Any] = {"detail": "Internal Server Error"}
    if show_traceback:
        body["error"] = f"{type(exc).__name__}: {exc}"
        body["traceback"] = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return JSONResponse(body, status_code=500)


class ErrorHandlers:
    """Handlers by exception class (most specific first) or by status code."""

    def __init__(self) -> None:
        self.by_type: dict[type[BaseException], ExceptionHandler] = {}
        self.by_status: dict[int, ExceptionHandler] = {}

    def add(self, key: int | type[BaseException], handler: ExceptionHandler) -> None:
        if isinstance(key, int) and not isinstance(key, bool):
            self.by_status[key] = handler
        elif isinstance(key, type) and issubclass(key, BaseException):
            self.by_type[key] = handler
        else:
            raise TypeError(f"exception_handler takes an exception class or a status code, got {key!r}")

    def find(self, exc: BaseException) -> ExceptionHandler | None:
        if isinstance(exc, HTTPException) and exc.status_code in self.by_status:
            return self.by_status[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in self.by_type:
                return self.by_type[cls]
        if not isinstance(exc, (HTTPException, RequestValidationError)) and 500 in self.by_status:
            return self.by_status[500]
        return None

    def default(self, exc: BaseException, show_traceback: bool) -> Response:
        if isinstance(exc, HTTPException):
            return http_exception_response(exc)
        if isinstance(exc, RequestValidationError):
            return validation_response(exc)
        if is_cancellation(exc):  # the server stopped before the handler finished
            return JSONResponse({"detail": "Service Unavailable"}, status_code=503)
        log.error("Exception in handler", exc_info=(type(exc), exc, exc.__traceback__))
        return server_error_response(exc, show_traceback)
