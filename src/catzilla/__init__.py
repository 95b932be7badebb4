"""Catzilla: a Python web framework whose hot path is C."""

from catzilla.app import Catzilla
from catzilla.background import BackgroundTasks
from catzilla.datastructures import FormData, State, UploadFile
from catzilla.dependencies import Depends, Security
from catzilla.encoders import jsonable_encoder
from catzilla.exceptions import HTTPException, RequestValidationError, ResponseValidationError
from catzilla.params import Body, Cookie, File, Form, Header, Path, Query
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
