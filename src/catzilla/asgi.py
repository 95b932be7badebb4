"""Run an ASGI 3 application (a Starlette or FastAPI app, ...) under a path:
``app.mount("/legacy", legacy_app)``.

Each request under the prefix is answered off the C fast path by an async
handler that speaks ASGI to the mounted app, as uvicorn would: the scope is
built from the request (``path`` is the full path, ``root_path`` ends with the
mount path), ``receive`` hands the body over as it arrives and then waits for
the end of the exchange (``http.disconnect``), and what the app ``send``s
becomes a streamed response (status and header lines as given, each body piece
written as it comes). A WebSocket handshake to the same paths reaches the app
as a ``websocket`` scope, on our WebSocket, whose ``receive`` and ``send`` speak
ASGI messages. The app's lifespan (``lifespan.startup`` / ``lifespan.shutdown``)
runs when the mounting app starts and stops serving; an app that does not speak
lifespan is served without it (uvicorn's "auto").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from catzilla.request import ClientDisconnect, HTTPConnection, Request
from catzilla.response import Response, StreamingResponse
from catzilla.websockets import WebSocket

Scope = MutableMapping[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
# Every method goes to the mounted app, which answers 405 itself.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

log = logging.getLogger("catzilla.error")
asgi_log = logging.getLogger("catzilla.asgi")


class ASGIMount:
    """An ASGI app mounted under ``path``: its request handler and its lifespan."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path
        self.state: dict[str, Any] = {}  # the lifespan's state; each request gets a copy
        self._lifespan: _Lifespan | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # apps still running (background tasks)
        # The endpoint lists of its routes; upgrade requests to them go to ``websocket``.
        self.endpoints: list[list[Any]] = []

    def patterns(self) -> list[str]:
        """The route patterns that reach the app: the mount path and all under it."""
        return [self.path or "/", f"{self.path}/{{path:path}}"]

    async def endpoint(self, request: Request) -> Response:
        """The route handler: the body is read as it arrives (``request.stream()``), or
        handed over in one message when the server has read it whole already."""
        raw = request._raw
        body = raw.body if raw.body_stream is None else None
        return await _Exchange(self, request, request.stream().__aiter__() if body is None else body).run()

    async def websocket(self, raw: Any, websocket: WebSocket) -> None:
        """The WebSocket binder: the app speaks ASGI to our WebSocket, whose ``receive``
        and ``send`` take and give ASGI messages already."""
        scope = self.scope(websocket, "websocket")
        await self.app(scope, websocket.receive, websocket.send)

    def scope(self, conn: HTTPConnection, kind: str = "http") -> Scope:
        """The scope uvicorn would give for ``conn``: the full path, our root path and the mount's."""
        root = conn.root_path
        # The path on the wire holds the mounts of the Catzilla app this one is served
        # by, not the prefix a proxy stripped: that one goes in front.
        mounted_at = str(getattr(conn.app, "mounted_at", ""))
        stripped = root[: len(root) - len(mounted_at)] if mounted_at and root.endswith(mounted_at) else root
        raw = conn._raw
        client = conn.client
        scope: Scope = {
            "type": kind,
            "asgi": ASGI_VERSION,
            "http_version": raw.http_version,
            "scheme": conn.url.scheme,
            "path": stripped + conn.path,
            "raw_path": (stripped + raw.path).encode("latin-1"),
            "root_path": root + self.path,
            "query_string": raw.query_string,
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in raw.headers],
            "client": (client.host, client.port) if client is not None else None,
            "server": _server(conn),
            "state": dict(self.state),
            "extensions": {},
        }
        if kind == "http":
            scope["method"] = raw.method
        else:
            scope["subprotocols"] = conn.subprotocols if isinstance(conn, WebSocket) else []
        return scope

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifespan (run on the app's asyncio loop by its startup and shutdown hooks) --

    async def startup(self) -> None:
        self._lifespan = _Lifespan(self)
        await self._lifespan.startup()

    async def shutdown(self) -> None:
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is not None:
            await lifespan.shutdown()


def _server(conn: HTTPConnection) -> tuple[str, int] | None:
    """The (host, port) the request was sent to, from its Host header."""
    host = conn.headers.get("host")
    if not host:
        return None
    if host.startswith("["):  # an IPv6 address
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    return name, int(port) if port.isdigit() else 443 if conn.url.scheme in ("https", "wss") else 80


class _Exchange:
    """One HTTP request through the mounted app."""

    def __init__(self, mount: ASGIMount, request: Request, chunks: AsyncIterator[bytes] | bytes) -> None:
        self.mount = mount
        self.scope = mount.scope(request)
        self.chunks = chunks  # the body as it arrives, or whole
        self.body_read = False
        self.started = False
        self.finished = False
        # The whole body, when the app sent it in one message before the response was
        # handed to the server: answered as a plain Response (no stream, no chunks).
        self.whole: bytes | None = None
        self.streaming = request.method == "HEAD"  # a HEAD's head keeps the app's Content-Length
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[Message] = loop.create_future()
        # Body pieces, one at a time (the app waits while the client is slow); None
        # ends the body, an exception cuts it short.
        self.pieces: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=1)
        self.over = asyncio.Event()  # the response is done or the client left

    async def run(self) -> Response:
        task = asyncio.create_task(self.call())
        self.mount._track(task)
        task.add_done_callback(self._returned)
        try:
            start = await self.head
        except asyncio.CancelledError:  # the client left before the head
            self.over.set()
            task.cancel()
            raise
        if self.whole is not None:
            self.over.set()  # complete: a later receive() says http.disconnect
            response = Response(self.whole, status_code=int(start["status"]))
        else:
            self.streaming = True
            response = StreamingResponse(self.body(), status_code=int(start["status"]))
        response.raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", ())]
        return response

    def _returned(self, task: asyncio.Task[None]) -> None:
        """The app returned (or raised) before starting a response: the head never comes."""
        if self.head.done():
            return
        if task.cancelled():
            self.head.cancel()
            return
        error = task.exception()  # answered 500 (and logged) by the app's error handling
        self.head.set_exception(error or RuntimeError("the ASGI app returned without starting a response"))

    async def call(self) -> None:
        try:
            await self.mount.app(self.scope, self.receive, self.send)
        except Exception as exc:
            if not self.started:
                raise
            if self.client_left:  # e.g. Starlette's ClientDisconnect: nobody is waiting for the rest
                asgi_log.debug("the ASGI app mounted at %r ended after its client left: %r", self.mount.path, exc)
            elif self.finished:  # as uvicorn: the response stands, the error is logged
                log.error("Exception in ASGI application mounted at %r", self.mount.path, exc_info=exc)
            else:
                await self.push(exc)
            return
        if self.started and not self.finished:
            await self.push(RuntimeError("the ASGI app returned without completing its response"))

    @property
    def client_left(self) -> bool:
        return self.over.is_set() and not self.finished

    async def push(self, item: bytes | BaseException | None) -> None:
        if not self.over.is_set():
            await self.pieces.put(item)

    async def body(self) -> AsyncIterator[bytes]:
        try:
            while True:
                piece = await self.pieces.get()
                if piece is None:
                    return
                if isinstance(piece, BaseException):
                    raise piece  # the head is sent: the connection is closed
                yield piece
        finally:
            self.over.set()
            while not self.pieces.empty():  # a sender waiting for room goes on
                self.pieces.get_nowait()

    async def receive(self) -> Message:
        if not self.body_read and isinstance(self.chunks, bytes):
            self.body_read = True
            return {"type": "http.request", "body": self.chunks, "more_body": False}
        if not self.body_read:
            assert not isinstance(self.chunks, bytes)
            try:
                chunk = await self.chunks.__anext__()
            except ClientDisconnect:
                self.over.set()
                return {"type": "http.disconnect"}
            self.body_read = not chunk  # the stream ends with an empty piece
            return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}
        await self.over.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("the ASGI app sent 'http.response.start' twice")
            self.started = True
            self.head.set_result(message)
        elif kind == "http.response.body":
            if not self.started:
                raise RuntimeError("the ASGI app sent 'http.response.body' before 'http.response.start'")
            if self.finished:
                raise RuntimeError("the ASGI app sent 'http.response.body' after the response was complete")
            if self.client_left:  # ASGI 2.4: send raises once the client is gone
                raise OSError("the client went away")
            body = bytes(message.get("body", b""))
            if not self.streaming and not message.get("more_body", False):
                self.finished = True
                self.whole = body
                return
            self.streaming = True
            if body:
                await self.push(body)
            if not message.get("more_body", False):
                self.finished = True
                await self.push(None)
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r}")


class _Lifespan:
    """The ``lifespan`` scope of a mounted app, from startup to shutdown."""

    def __init__(self, mount: ASGIMount) -> None:
        self.mount = mount
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.replies: asyncio.Queue[Message | None] = asyncio.Queue()  # None: the app returned
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self.task = asyncio.create_task(self.main())
        reply = await self.ask("lifespan.startup")
        if reply is None:
            return
        if reply["type"] == "lifespan.startup.failed":
            message = reply.get("message", "")
            raise RuntimeError(f"the ASGI app mounted at {self.mount.path!r} failed to start: {message}")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        reply = await self.ask("lifespan.shutdown")
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            log.error("the ASGI app mounted at %r failed to shut down: %s", self.mount.path, reply.get("message", ""))
        await asyncio.wait([self.task], timeout=5)

    async def ask(self, event: str) -> Message | None:
        await self.inbox.put({"type": event})
        return await self.replies.get()

    async def main(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.mount.state}
        started = False

        async def send(message: Message) -> None:
            nonlocal started
            started = True
            await self.replies.put(message)

        try:
            await self.mount.app(scope, self.inbox.get, send)
        except Exception:
            if started:
                log.exception("Exception in the lifespan of the ASGI app mounted at %r", self.mount.path)
            else:  # as uvicorn's "auto": an app without lifespan support raises on the scope
                asgi_log.debug("the ASGI app mounted at %r does not support lifespan", self.mount.path)
        finally:
            await self.replies.put(None)
