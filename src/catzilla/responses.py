"""Responses under the name Starlette and FastAPI give them (``fastapi.responses``)."""

from __future__ import annotations

import json
from typing import Any

from catzilla.response import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)


class ORJSONResponse(JSONResponse):
    """JSON written by orjson (``pip install orjson``); Catzilla's JSONResponse already
    uses orjson when it is installed, so this is FastAPI's name for the same."""

    def render(self, content: Any) -> bytes:
        try:
            import orjson
        except ImportError:
            return super().render(content)
        return bytes(orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))


class UJSONResponse(JSONResponse):
    """JSON written by ujson when it is installed (``pip install ujson``), else the stdlib's."""

    def render(self, content: Any) -> bytes:
        try:
            import ujson  # type: ignore[import-untyped]
        except ImportError:
            return json.dumps(content, ensure_ascii=False).encode()
        return bytes(ujson.dumps(content, ensure_ascii=False).encode("utf-8"))


__all__ = [
    "FileResponse",
    "HTMLResponse",
    "JSONResponse",
    "ORJSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
    "UJSONResponse",
]
