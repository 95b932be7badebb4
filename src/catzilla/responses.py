"""Responses under the name Starlette and FastAPI give them (``fastapi.responses``)."""

from catzilla.response import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

__all__ = ["HTMLResponse", "JSONResponse", "PlainTextResponse", "RedirectResponse", "Response", "StreamingResponse"]
