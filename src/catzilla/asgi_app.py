"""A Catzilla app as an ASGI 3 application, and ASGI middleware around it.

``await app(scope, receive, send)`` serves the app under any ASGI server
(``uvicorn module:app``) or client (``httpx.ASGITransport``, Starlette's
``TestClient``). The request logic is the one the C server runs: the route is
found by the same C router (``Server.match``), and the route's endpoint list
(the binder, the middleware chain, the WebSocket runner) is called with a
``ScopeRequest``, a Python stand-in for the C core's ``RawRequest`` made from
the scope. Only the transport differs: the body comes from ``receive``, the
response goes out through ``send`` (streamed as its pieces come), and what
the C core does itself (404/405 and the trailing-slash redirect) is done here
the same way.

ASGI middleware (``app.add_middleware(CORSMiddleware, ...)`` with a Starlette
class, or any ``cls(app, **options)`` returning an ASGI app) wraps this
dispatcher. On Catzilla's own server the routes are then answered through the
chain: each one's endpoint list is replaced by one that speaks ASGI to the
chain (as ``app.mount`` does for a mounted app, catzilla.asgi), and the
chain's innermost app is this dispatcher, which calls the route's own
endpoint. An app without ASGI middleware keeps the C fast path untouched.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import inspect
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from catzilla import _core
from catzilla.asgi import ASGIApp, ASGIMount, Message, Receive, Scope, Send
from catzilla.background import BackgroundTasks, deferred_background
from catzilla.calling.render import NO_BODY
from catzilla.exceptions import HTTPException
from catzilla.params import MODE_DIRECT, MODE_NO_ARGS, MODE_REQUEST, MODE_STATIC, MODE_WS
from catzilla.request import ClientDisconnect, HTTPConnection
from catzilla.response import FileResponse, Response, StreamingResponse
from catzilla.threadpool import POLICY_AUTO, POLICY_LOOP, POLICY_POOL

if TYPE_CHECKING:
    from catzilla.app import Catzilla

log = logging.getLogger("catzilla.error")

# Whole bodies are read up to this many bytes when the app sets no max_body_size
# (the C server's own default bound, docs/server.md).
DEFAULT_MAX_BODY = _core.DEFAULT_MAX_BODY_SIZE
FILE_CHUNK = 64 * 1024
# A sync handler that holds the event loop longer than this (wall time) runs on the
# thread pool from then on, as our server moves one it sees blocking.
BLOCKING_S = 0.005
SLASH_ADD, SLASH_REMOVE = _core.SLASH_ADD, _core.SLASH_REMOVE  # Server.match's hint for a path not found
RAW_KEY = "catzilla.raw"  # the RawRequest a scope was made from, on our own server


class ScopeRequest:
    """What the C core's ``RawRequest`` holds, made from an ASGI scope: the binders,
    ``Request`` and ``WebSocket`` read a request through these attributes only."""

    __slots__ = (
        "allocator",
        "asgi_scope",
        "body",
        "body_stream",
        "client",
        "form",
        "form_parts",
        "headers",
        "http_version",
        "method",
        "path",
        "path_params",
        "query_string",
        "root_path",
        "scheme",
        "websocket",
    )

    def __init__(
        self,
        scope: Scope,
        path: str,
        path_params: dict[str, str],
        allocator: Any,
        body: bytes = b"",
        body_stream: ReceivedBody | None = None,
        websocket: ASGIWebSocketConnection | None = None,
    ) -> None:
        self.asgi_scope = scope
        self.method = str(scope.get("method", "GET"))
        self.path = path
        self.query_string = bytes(scope.get("query_string", b""))
        self.body = body
        self.body_stream = body_stream
        self.websocket = websocket
        origin = scope.get(RAW_KEY)
        self.form_parts = origin.form_parts if origin is not None else None  # spooled by our server
        self.form: Any = None  # as parsed for the endpoint's parameters (RawRequest.form)
        self.scheme = str(scope.get("scheme") or "http")
        # Under another server the scope says where the app is served; on ours the app does.
        self.root_path = str(scope.get("root_path", "")) if origin is None else None
        self.headers = [(bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1")) for k, v in scope["headers"]]
        self.path_params = path_params
        client = scope.get("client")
        self.client = (str(client[0]), int(client[1])) if client else None
        self.http_version = str(scope.get("http_version", "1.1"))
        self.allocator = allocator


class ReceivedBody:
    """A request body read from ``receive`` as the handler takes it: the C core's
    ``_BodyStream`` protocol (``take()``: a piece, ``b""`` at the end, None when
    none is there yet (``park(future)``, then again), 499 when the client left)."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit  # past this many bytes: 413 (take() says so, ClientDisconnect(413))
        self.size = 0
        self.over_limit = False
        self.pieces: collections.deque[bytes | int] = collections.deque()
        self.reading: asyncio.Task[None] | None = None

    def take(self) -> bytes | int | None:
        return self.pieces.popleft() if self.pieces else None

    def park(self, future: asyncio.Future[None]) -> bool:
        if self.reading is None or self.reading.done():
            self.reading = asyncio.ensure_future(self._read())
        self.reading.add_done_callback(lambda _: _settle(future))
        return True

    async def _read(self) -> None:
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.pieces.append(499)
            return
        body = bytes(message.get("body", b""))
        self.size += len(body)
        if self.size > self.limit:
            self.over_limit = True
            self.pieces.append(413)
            return
        if body:
            self.pieces.append(body)
        if not message.get("more_body", False):
            self.pieces.append(b"")


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; ClientDisconnect(413) past ``limit`` bytes (the
    route's ``max_body_size``, else the app's), ClientDisconnect when the client
    leaves first."""
    pieces: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body = bytes(message.get("body", b""))
        size += len(body)
        if size > limit:
            raise ClientDisconnect(413)
        pieces.append(body)
        if not message.get("more_body", False):
            return b"".join(pieces)


class ASGIWebSocketConnection:
    """The connection side of a WebSocket over ASGI ``receive``/``send``: the C core's
    ``_WebSocket`` protocol, which catzilla.websockets.WebSocket drives. What the
    handler sends goes out in order through one sender task; ``send`` says 2
    (wait with ``park_send``) while more than ``HIGH_WATER`` messages wait."""

    HIGH_WATER = 64

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.inbox: collections.deque[str | bytes | int] = collections.deque()
        self.outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self.close_reason: str | None = None
        self.ended = False  # no more messages will come
        self.accepted = False
        self.closed = False  # a close was sent
        self._reading: asyncio.Task[None] | None = None
        self._drained: list[asyncio.Future[None]] = []
        self._sender = asyncio.ensure_future(self._send_all())

    async def connect(self) -> bool:
        """Take the ``websocket.connect`` message; False when the client left first."""
        message = await self._receive()
        return bool(message["type"] == "websocket.connect")

    def accept(self, subprotocol: str | None, headers: list[tuple[str, str]]) -> None:
        self.accepted = True
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.outbox.put_nowait({"type": "websocket.accept", "subprotocol": subprotocol, "headers": raw})

    def send(self, data: str | bytes) -> int:
        if self.closed or (self.ended and not self.accepted):
            return 0
        key = "text" if isinstance(data, str) else "bytes"
        self.outbox.put_nowait({"type": "websocket.send", key: data})
        return 2 if self.outbox.qsize() > self.HIGH_WATER else 1

    def park_send(self, future: asyncio.Future[None]) -> bool:
        if self.outbox.qsize() <= self.HIGH_WATER:
            return False
        self._drained.append(future)
        return True

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait({"type": "websocket.close", "code": code, "reason": reason})

    def take(self) -> str | bytes | int | None:
        return self.inbox.popleft() if self.inbox else None

    def park(self, future: asyncio.Future[None]) -> bool:
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read())
        self._reading.add_done_callback(lambda _: _settle(future))
        return True

    async def _read(self) -> None:
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            self.inbox.append(text if text is not None else bytes(message.get("bytes") or b""))
        elif kind == "websocket.disconnect":
            self.ended = True
            self.close_reason = message.get("reason") or None
            self.inbox.append(int(message.get("code", 1005)))

    async def _send_all(self) -> None:
        while True:
            message = await self.outbox.get()
            if message is None:
                return
            try:
                await self._send(message)
            except Exception:  # the client is gone: what is left is dropped
                self.ended = True
                self.closed = True
            if self.outbox.qsize() <= self.HIGH_WATER:
                drained, self._drained = self._drained, []
                for future in drained:
                    if not future.done():
                        future.set_result(None)

    async def finish(self, refusal: Response | None) -> None:
        """After the handler: a refused handshake is closed (the server answers 403),
        an accepted connection the handler left open is closed with 1000."""
        if refusal is not None and not self.accepted:
            code = 1000
            with contextlib.suppress(ValueError, AttributeError):
                code = int(json.loads(bytes(refusal.body or b"{}")).get("code", 1000))
            self.close(code, "")
        elif self.accepted and not self.closed:
            self.close(1000, "")
        self.outbox.put_nowait(None)
        await self._sender
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()


class Dispatcher:
    """The app's requests over ASGI, routed by the C router and answered by the
    routes' own endpoints. One per app, made on the first call."""

    def __init__(self, app: Catzilla) -> None:
        self.app = app
        self.lifespan_started = False  # the lifespan scope reached the app (LifespanThrough)
        self.startup_error: BaseException | None = None

    # -- routing ---------------------------------------------------------------------------

    def route_path(self, scope: Scope) -> bytes:
        """The raw (percent-encoded) path the routes are matched on: the scope's
        path without its ``root_path`` (as Starlette's routing takes it). ``raw_path``
        keeps the client's encoding (``%2F`` in a parameter) unless a middleware
        rewrote ``path`` alone; then ``path`` is encoded again."""
        text = str(scope["path"])
        raw = scope.get("raw_path")
        path = b""
        if raw:
            path = bytes(raw).split(b"?", 1)[0]
            sent = path.decode("latin-1")
            if (unquote(sent) if "%" in sent else sent) != text:
                path = b""
        if not path:
            path = quote(text, safe="/:@!$&'()*+,;=").encode("ascii")
        root = str(scope.get("root_path", "")).encode("latin-1", "replace")
        if root and path.startswith(root) and path[len(root) : len(root) + 1] in (b"", b"/"):
            path = path[len(root) :] or b"/"
        return path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(scope, receive, send)
        else:
            raise RuntimeError(f"unsupported ASGI scope type {kind!r}")

    # -- HTTP ------------------------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        path = self.route_path(scope)
        found = app._server.match(str(scope["method"]).upper(), path)
        if isinstance(found[0], int):
            raw = ScopeRequest(scope, path.decode("latin-1"), {}, app._memory.allocator)
            await self.no_route(scope, raw, found, send)
            return
        route_endpoint, params, body_mode, route_limit = found
        around = app._asgi_route_stacks.get(id(route_endpoint))
        if around is not None:  # the route's own ASGI middleware, then the route (RouteApp)
            await around(dict(scope, path_params=params), receive, send)
            return
        endpoint, is_async, key = app._asgi_route(route_endpoint)
        await self.answer(scope, receive, send, path, endpoint, is_async, key, params, body_mode, route_limit)

    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: bytes,
        endpoint: list[Any],
        is_async: bool | None,
        key: int,
        params: dict[str, str],
        body_mode: int,
        route_limit: int,
    ) -> None:
        """Answer an HTTP request with a route's endpoint: its body from ``receive``
        (whole, or as the handler takes it), its response through ``send``, then its
        background tasks."""
        app = self.app
        method = str(scope["method"]).upper()
        raw = ScopeRequest(scope, path.decode("latin-1"), params, app._memory.allocator)
        # On our server the C core held the body to its limits already.
        limit = (route_limit or app.max_body_size or DEFAULT_MAX_BODY) if scope.get(RAW_KEY) is None else 1 << 62
        held: list[BackgroundTasks] = []
        token = deferred_background.set(held)
        try:
            try:
                if body_mode == 1 and endpoint[0] != MODE_STATIC:  # read as the handler takes it
                    raw.body_stream = ReceivedBody(receive, limit)
                elif scope.get(RAW_KEY) is None or scope[RAW_KEY].form_parts is None:
                    raw.body = await read_body(receive, limit)
                response = await self.call(endpoint, is_async, raw, key)
                if raw.body_stream is not None and raw.body_stream.over_limit:  # whatever the handler made of it
                    raise ClientDisconnect(413)
            except ClientDisconnect as gone:
                if gone.status_code != 413:
                    return  # the client left: nobody to answer
                response = await self.error(raw, HTTPException(413, "Content Too Large"))  # as our server says
            except Exception as exc:
                response = await self.error(raw, exc)
        finally:
            deferred_background.reset(token)
        await send_response(response, send, method == "HEAD")
        for tasks in held:  # after the response, as Starlette's
            await tasks()
        if response.background is not None:
            await response.background()

    async def error(self, raw: ScopeRequest, exc: BaseException) -> Response:
        """The app's answer to an exception: its handlers, else the default one."""
        on_error: Any = self.app._on_error_async  # it takes the RawRequest's stand-in as well
        response: Response = await on_error(raw, exc)
        return response

    async def call(self, endpoint: list[Any], is_async: bool | None, raw: ScopeRequest, key: int) -> Response:
        """Call a route's endpoint list as the C core would for its mode; a sync one
        where the C core would: inline until seen holding the loop longer than
        ``BLOCKING_S`` (then on the thread pool for good), or where ``threadpool=``
        on the route says."""
        from catzilla.calling import render

        mode = endpoint[0]
        args: tuple[Any, ...]
        if mode == MODE_NO_ARGS:
            fn, args = endpoint[1], ()
        elif mode == MODE_REQUEST:
            fn, args = endpoint[1], (raw,)
        elif mode == MODE_DIRECT:
            fn, args = endpoint[3], (raw,)  # the binder: the C core's fallback for the same call
        elif mode == MODE_STATIC:
            return static_response(endpoint[1], raw.path)
        else:
            raise HTTPException(404, "Not Found")  # a WebSocket route, asked over plain HTTP
        if is_async is None:
            is_async = inspect.iscoroutinefunction(fn)
        policy = self.app._asgi_policy.get(key, POLICY_AUTO)
        if is_async or policy == POLICY_LOOP:
            value = fn(*args)
        elif policy == POLICY_POOL:
            loop = asyncio.get_running_loop()
            value = await loop.run_in_executor(None, contextvars.copy_context().run, fn, *args)
        else:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            asyncio.events._set_running_loop(None)  # sync code sees no loop, as on a thread (request.body is bytes)
            try:
                value = fn(*args)
            finally:
                asyncio.events._set_running_loop(loop)
                took = time.perf_counter() - started
                if took > BLOCKING_S:
                    self.app._asgi_blocked(key, took)
                elif key in self.app._asgi_slow:
                    del self.app._asgi_slow[key]
        if inspect.isawaitable(value):
            value = await value
        return render.to_response(value)

    async def no_route(self, scope: Scope, raw: ScopeRequest, found: tuple[Any, ...], send: Send) -> None:
        """No route: 405 with Allow, a 307 to the path with its trailing '/' added or
        removed, or 404 (the app's 404 handler when it has one), as our server answers."""
        status, detail = found
        if status == 405:
            if raw.method == "OPTIONS":
                response = Response(None, status_code=204, headers={"Allow": str(detail)})
            else:
                response = await self.error(raw, HTTPException(405, "Method Not Allowed", {"Allow": detail}))
        elif detail in (SLASH_ADD, SLASH_REMOVE):
            path = str(scope.get("root_path", "")) + (raw.path + "/" if detail == SLASH_ADD else raw.path[:-1])
            query = f"?{raw.query_string.decode('latin-1')}" if raw.query_string else ""
            response = Response(None, status_code=307, headers={"Location": path + query})
        else:
            response = await self.error(raw, HTTPException(404, "Not Found"))
        await send_response(response, send, raw.method == "HEAD")

    # -- WebSocket -------------------------------------------------------------------------

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        path = self.route_path(scope)
        found = app._server.match("GET", path)
        endpoint: list[Any] | None = None
        params: dict[str, str] = {}
        if not isinstance(found[0], int):
            around = app._asgi_route_stacks.get(id(found[0]))
            if around is not None:  # the route's own ASGI middleware, then the route (RouteApp)
                await around(dict(scope, path_params=found[1]), receive, send)
                return
            endpoint, params = app._asgi_route(found[0])[0], found[1]
            if endpoint[0] == MODE_REQUEST and len(endpoint) > 2 and isinstance(endpoint[2], list):
                endpoint = endpoint[2]  # a mounted ASGI app's WebSocket runner
        await self.answer_websocket(scope, receive, send, path, endpoint, params)

    async def answer_websocket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: bytes,
        endpoint: list[Any] | None,
        params: dict[str, str],
    ) -> None:
        """Run a WebSocket route's endpoint on the ASGI connection; no WebSocket
        route (``endpoint`` None or an HTTP one): refused, as our server does."""
        conn = ASGIWebSocketConnection(receive, send)
        if not await conn.connect():
            await conn.finish(None)
            return
        if endpoint is None or endpoint[0] != MODE_WS:
            await conn.finish(Response(json.dumps({"code": 1000}), status_code=403))  # no WebSocket route: 403
            return
        raw = ScopeRequest(scope, path.decode("latin-1"), params, self.app._memory.allocator, websocket=conn)
        refusal: Response | None = None
        try:
            result = await endpoint[1](raw)
            refusal = result if isinstance(result, Response) else None
        except Exception as exc:
            if not conn.accepted:  # e.g. HTTPException from a dependency: refused
                refusal = Response(json.dumps({"code": 1008}), status_code=403)
                log.debug("WebSocket handshake to %r refused: %r", raw.path, exc)
            else:
                log.error("Exception in WebSocket handler", exc_info=exc)
                conn.close(1011, "")
        await conn.finish(refusal)

    # -- lifespan --------------------------------------------------------------------------

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Startup and shutdown hooks (and ``lifespan=``) on the ASGI server's loop. A
        hook's exception is reported (``lifespan.startup.failed``) and raised, as
        Starlette's router does: the server stops, naming it."""
        app = self.app
        started = False
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.lifespan_started = True
                try:
                    await app._lifespan.startup_async(app)
                except BaseException as exc:
                    self.startup_error = exc
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    raise
                started = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    if started:
                        await app._lifespan.shutdown_async(app)
                except BaseException as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                    raise
                await send({"type": "lifespan.shutdown.complete"})
                return


def static_response(files: Any, path: str) -> Response:
    """A ``StaticFiles`` directory is served by the C core only (its path checks and
    file cache live there): under another ASGI server it answers 501, saying so."""
    log.warning("StaticFiles %r is served by Catzilla's own server only; %r answered 501", files, path)
    raise HTTPException(501, "StaticFiles directories are served by Catzilla's own server only")


# -- responses out -------------------------------------------------------------------------


def _head(response: Response, extra: list[tuple[bytes, bytes]]) -> Message:
    headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in response.raw_headers]
    return {"type": "http.response.start", "status": response.status_code, "headers": headers + extra}


def _has(response: Response, name: str) -> bool:
    return any(k.lower() == name for k, _ in response.raw_headers)


async def send_response(response: Response, send: Send, head_only: bool = False) -> None:
    """Send ``response`` as ASGI messages: a whole body with its Content-Length, a
    streamed one piece by piece (its iterator closed when the client leaves), a file
    read in pieces on the thread pool. HEAD gets the head only."""
    status = response.status_code
    no_body = status in NO_BODY or status < 200
    if isinstance(response, StreamingResponse):
        await send(_head(response, []))
        await _send_stream(response.body_iterator, send, head_only or no_body)
        return
    if isinstance(response, FileResponse):
        await _send_file(response, send, head_only)
        return
    body = b"" if no_body else bytes(response.body or b"")
    extra = [] if no_body or _has(response, "content-length") else [(b"content-length", str(len(body)).encode())]
    await send(_head(response, extra))
    await send({"type": "http.response.body", "body": b"" if head_only else body})


def _next(pieces: Any, done: object) -> Any:
    return next(pieces, done)


async def _send_stream(source: Any, send: Send, head_only: bool) -> None:
    loop = asyncio.get_running_loop()
    pieces: AsyncIterator[Any] | Iterator[Any]
    is_async = hasattr(source, "__aiter__")
    pieces = source.__aiter__() if is_async else iter(source)
    done = object()
    try:
        while not head_only:
            if is_async:
                try:
                    piece = await pieces.__anext__()  # type: ignore[union-attr]
                except StopAsyncIteration:
                    break
            else:
                piece = await loop.run_in_executor(None, _next, pieces, done)
                if piece is done:
                    break
            data = piece.encode("utf-8") if isinstance(piece, str) else bytes(piece)
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        closer = getattr(pieces, "aclose", None) or getattr(source, "aclose", None)
        if closer is not None:
            await closer()
        elif hasattr(pieces, "close"):
            pieces.close()


async def _send_file(response: FileResponse, send: Send, head_only: bool) -> None:
    loop = asyncio.get_running_loop()
    path = response._fspath
    try:
        size = (await loop.run_in_executor(None, os.stat, path)).st_size
        handle = await loop.run_in_executor(None, open, path, "rb")
    except OSError as exc:
        status = 404 if isinstance(exc, FileNotFoundError) else 500
        log.error("FileResponse %r cannot be sent", os.fsdecode(path), exc_info=exc)
        await send_response(Response('{"detail":"Not Found"}' if status == 404 else None, status_code=status), send)
        return
    with handle:
        extra = [] if _has(response, "content-length") else [(b"content-length", str(size).encode())]
        await send(_head(response, extra))
        while not head_only:
            data = await loop.run_in_executor(None, handle.read, FILE_CHUNK)
            if not data:
                break
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


# -- ASGI middleware on our own server -----------------------------------------------------


def build_stack(inner: ASGIApp, middleware: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> ASGIApp:
    """The middleware chain around ``inner``: the first in the list is outermost."""
    app = inner
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
        if not callable(app):
            raise TypeError(f"ASGI middleware {cls!r} returned {app!r}, which is not an ASGI app")
    return app


class RouteApp:
    """The innermost app of one route's own ASGI middleware (``middleware=[...]`` on
    the route or its group): the route's endpoint, answered as the dispatcher
    answers any route. Its path parameters come in the scope (``path_params``, set
    by the dispatcher), or, on our server, from the request the C core routed."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        endpoint: list[Any],
        is_async: bool | None,
        key: int,
        body_mode: int,
        limit: int,
    ) -> None:
        self.dispatcher = dispatcher
        self.endpoint = endpoint
        self.is_async = is_async
        self.key = key
        self.body_mode = body_mode
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        dispatcher = self.dispatcher
        path = dispatcher.route_path(scope)
        params = scope.get("path_params")
        if params is None:
            origin = scope.get(RAW_KEY)
            params = dict(origin.path_params) if origin is not None else {}
        kind = scope["type"]
        if kind == "http":
            await dispatcher.answer(
                scope, receive, send, path, self.endpoint, self.is_async, self.key, params, self.body_mode, self.limit
            )
        elif kind == "websocket":
            endpoint = self.endpoint
            if endpoint[0] == MODE_REQUEST and len(endpoint) > 2 and isinstance(endpoint[2], list):
                endpoint = endpoint[2]
            await dispatcher.answer_websocket(scope, receive, send, path, endpoint, params)
        else:
            raise RuntimeError(f"a route's middleware passed on a {kind!r} scope; routes answer http and websocket")


class MountedApp:
    """A Catzilla app mounted in this one (``app.mount(prefix, sub)``), with ASGI
    middleware of its own: over ASGI its routes are answered through its chain, the
    prefix added to the scope's ``root_path`` as a mount does."""

    def __init__(self, stack: ASGIApp, prefix: str) -> None:
        self.stack = stack
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stack(dict(scope, root_path=str(scope.get("root_path", "")) + self.prefix), receive, send)


class RootMount(ASGIMount):
    """The ASGI middleware chain mounted at the app's root on our server: scopes as
    for any mounted app, with the RawRequest they were made from (the innermost app
    takes a spooled form from it)."""

    def scope(self, conn: HTTPConnection, kind: str = "http") -> Scope:
        made = super().scope(conn, kind)
        made[RAW_KEY] = conn._raw
        return made


class ThroughMiddleware:
    """Our server's side of an app with ASGI middleware: the endpoints every route
    gets (``http``, ``websocket``), which hand the request to the chain as an ASGI
    app mounted at the app's root would be (catzilla.asgi's adapter)."""

    def __init__(self, app: Catzilla, stack: ASGIApp) -> None:
        from catzilla import websockets

        self.mount = RootMount(stack, "")
        request_class = app._request_class
        endpoint = self.mount.endpoint

        async def http(raw: Any) -> Response:
            return await endpoint(request_class(raw))

        self.http = http
        self.websocket = websockets.endpoint(
            self.mount.websocket, app._websocket_class, app._report_ws, app._report, app._ws_running
        )


class LifespanThrough:
    """On our server, the app's startup and shutdown run as a ``lifespan`` scope
    through its ASGI middleware, as under uvicorn. A middleware that does not pass
    the scope on leaves the app's hooks to run the usual way."""

    def __init__(self, app: Catzilla, stack: ASGIApp) -> None:
        self.app = app
        self.mount = ASGIMount(stack, "")
        self.direct = False  # the scope did not reach the app: its hooks run directly

    def startup(self) -> None:
        app = self.app
        dispatcher = app._asgi_dispatcher
        run_sync = app._runner.run_sync
        try:
            run_sync(self.mount.startup())
        except RuntimeError:
            if dispatcher is None or dispatcher.startup_error is None:
                raise
        if dispatcher is not None and dispatcher.startup_error is not None:
            error, dispatcher.startup_error = dispatcher.startup_error, None
            raise error
        if dispatcher is None or not dispatcher.lifespan_started:
            self.direct = True
            app._lifespan.startup(app, run_sync)

    def shutdown(self) -> None:
        app = self.app
        if self.direct:
            app._lifespan.shutdown(app, app._runner.run_sync)
            return
        app._runner.run_sync(self.mount.shutdown())
        dispatcher = app._asgi_dispatcher
        if dispatcher is not None:
            dispatcher.lifespan_started = False
