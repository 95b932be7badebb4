"""Run a WSGI application (Flask, Django, a plain callable) as an ASGI app, as
Starlette's ``WSGIMiddleware`` and a2wsgi do: ``app.mount("/legacy",
WSGIMiddleware(flask_app))`` or ``app.mount_wsgi("/legacy", flask_app)``.

The request body is read whole into ``wsgi.input`` first (WSGI reads it with
blocking calls); the WSGI app then runs on a thread of the thread pool, so
its blocking code never holds up the event loop, and what it returns is sent
piece by piece as it produces it (each piece waits until the ASGI server
took the previous one). ``SCRIPT_NAME`` is the mount path (the scope's
``root_path``), ``PATH_INFO`` the rest, as PEP 3333 says.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable
from typing import Any

from catzilla.asgi import Message, Receive, Scope, Send

StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

__all__ = ["WSGIMiddleware", "build_environ"]


def build_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP scope (PEP 3333): strings are latin-1, a
    path's UTF-8 bytes included; repeated headers are joined with ','."""
    root_path = str(scope.get("root_path", ""))
    path = str(scope["path"])
    path_info = path[len(root_path) :] if root_path and path.startswith(root_path) else path
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path_info.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": bytes(scope.get("query_string", b"")).decode("ascii", "replace"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = bytes(raw_name).decode("latin-1").upper().replace("-", "_")
        value = bytes(raw_value).decode("latin-1")
        key = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class WSGIMiddleware:
    """An ASGI app that serves the WSGI app ``app`` (HTTP only: a WebSocket is
    refused, as WSGI has none). ``workers`` is accepted for Starlette's old
    signature and ignored: the loop's thread pool runs the app."""

    def __init__(self, app: WSGIApp, workers: int | None = None) -> None:
        if not callable(app):
            raise TypeError(f"WSGIMiddleware takes a WSGI callable (environ, start_response), got {app!r}")
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":  # nothing to start: say so, as an app without lifespan does
            raise RuntimeError("a WSGI app has no lifespan")
        if kind != "http":
            if kind == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1000})
                return
            raise RuntimeError(f"WSGIMiddleware serves HTTP only, got a {kind!r} scope")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        await _Call(self.app, scope, bytes(body), send).run()


class _Call:
    """One request through the WSGI app, whose code runs on a pool thread."""

    def __init__(self, app: WSGIApp, scope: Scope, body: bytes, send: Send) -> None:
        self.app = app
        self.environ = build_environ(scope, body)
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.head: Message | None = None  # set by start_response, sent with the first piece
        self.head_sent = False

    async def run(self) -> None:
        await self.loop.run_in_executor(None, self.serve)

    def emit(self, message: Message) -> None:
        """Send from the pool thread, waiting until the ASGI server took it."""
        asyncio.run_coroutine_threadsafe(self._send(message), self.loop).result()

    async def _send(self, message: Message) -> None:
        await self.send(message)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self.head_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        if self.head is not None and exc_info is None:
            raise RuntimeError("start_response called twice without exc_info")
        code, _, _ = status.partition(" ")
        if not code.isdigit():
            raise ValueError(f"the WSGI app gave an invalid status {status!r}")
        self.head = {
            "type": "http.response.start",
            "status": int(code),
            "headers": [(k.strip().lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        }
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write`` callable start_response returns."""
        self.flush_head()
        if data:
            self.emit({"type": "http.response.body", "body": bytes(data), "more_body": True})

    def flush_head(self) -> None:
        if self.head_sent:
            return
        if self.head is None:
            raise RuntimeError("the WSGI app sent a body before calling start_response")
        self.head_sent = True
        self.emit(self.head)

    def serve(self) -> None:
        result = self.app(self.environ, self.start_response)
        try:
            for piece in result:
                if piece:
                    self.write(piece)
            self.flush_head()
            self.emit({"type": "http.response.body", "body": b""})
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
