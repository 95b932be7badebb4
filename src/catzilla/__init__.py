"""Catzilla: a Python web framework whose hot path is C."""

import os as _os

# CATZILLA_PROCESS_HEAP=jemalloc|mimalloc (what `catzilla run` sets): the
# allocator takes the interpreter's memory now, before the imports below and
# the app's, which are most of a fresh process's heap (docs/memory.md).
if _os.environ.get("CATZILLA_PROCESS_HEAP", "").strip():
    from catzilla import _core as _early

    PROCESS_HEAP_REASON: str | None = _early._open_process_heap(_os.environ["CATZILLA_PROCESS_HEAP"].strip())
    del _early

from catzilla.app import Catzilla
from catzilla.background import BackgroundTasks
from catzilla.datastructures import FormData, State, UploadFile
from catzilla.encoders import jsonable_encoder
from catzilla.exceptions import HTTPException, RequestValidationError, ResponseValidationError
from catzilla.params import Body, Cookie, Depends, File, Form, Header, Path, Query, Security
from catzilla.request import ClientDisconnect, Request
from catzilla.response import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from catzilla.routing import APIRouter, Route, RouterGroup
from catzilla.websockets import WebSocket, WebSocketDisconnect, WebSocketException, WebSocketState

__all__ = [
    "APIRouter",
    "BackgroundTasks",
    "Body",
    "Catzilla",
    "ClientDisconnect",
    "Cookie",
    "Depends",
    "File",
    "FileResponse",
    "Form",
    "FormData",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "JSONResponse",
    "Path",
    "PlainTextResponse",
    "Query",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "ResponseValidationError",
    "Route",
    "RouterGroup",
    "Security",
    "State",
    "StreamingResponse",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketException",
    "WebSocketState",
    "jsonable_encoder",
]
__version__ = "0.3.0"
