"""WebSockets with Starlette's API, on the C core's RFC 6455 implementation.

::

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str, token: str | None = None):
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"{room}: {text}")

The handshake is checked in C (400/426 otherwise) before the handler runs;
``accept()`` answers 101 (with the chosen subprotocol and, when the client
offers it and the app allows it, permessage-deflate). Frames are parsed,
unmasked, checked (UTF-8, close codes, sizes) and answered (ping -> pong,
close -> close) in C; the handler gets whole messages. A handler that returns
without accepting, or closes before accepting, or raises ``WebSocketException``
before accepting, answers HTTP 403; ``HTTPException`` before accepting answers
its status. After accepting, returning closes with 1000, raising with 1011
(logged); a peer that vanishes raises ``WebSocketDisconnect(1006)`` at the next
receive or send.
"""

from __future__ import annotations

import enum
import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

from catzilla import _core
from catzilla.datastructures import URL
from catzilla.request import HTTPConnection


def _loop() -> Any:
    import asyncio  # only once a WebSocket runs: a sync app never imports asyncio

    return asyncio.get_running_loop()


def _future(ws: WebSocket) -> Any:
    """A future of the connection's loop, kept from its first wait: asking
    for the running loop each time costs a getpid() call before Python 3.12."""
    loop = ws.__dict__.get("_loop")
    if loop is None:
        loop = ws.__dict__["_loop"] = _loop()
    return loop.create_future()


__all__ = [
    "WebSocket",
    "WebSocketClose",
    "WebSocketDisconnect",
    "WebSocketException",
    "WebSocketState",
    "broadcast",
]

log = logging.getLogger("catzilla.error")


class WebSocketState(enum.Enum):
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocketDisconnect(Exception):
    """The connection ended: ``code`` (1000 normal, 1001 going away, 1006 lost,
    ...) and ``reason`` as the peer sent them."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)


class WebSocketException(Exception):
    """Raise it to refuse (before accept: HTTP 403) or close (after) with ``code``."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class WebSocketClose:
    """An ASGI-style app's way to refuse a handshake (Starlette's name)."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""


def _encode_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class WebSocket(HTTPConnection):
    """One WebSocket connection, as a handler sees it (Starlette's API)."""

    __slots__ = ()

    def __init__(self, raw: Any) -> None:
        super().__init__(raw)
        self.__dict__["_conn"] = raw.websocket
        self.__dict__["client_state"] = WebSocketState.CONNECTING
        self.__dict__["application_state"] = WebSocketState.CONNECTING
        self.__dict__["_connect_seen"] = False

    client_state: WebSocketState
    application_state: WebSocketState
    _conn: Any  # catzilla._core._WebSocket: the connection side
    _connect_seen: bool

    @property
    def method(self) -> str:
        """The handshake's method ("GET"), for HTTP middleware that looks at it."""
        return str(self._raw.method)

    @property
    def url(self) -> URL:
        host = self.headers.get("host", "")
        return URL("ws", host, self.path, self._raw.query_string.decode("latin-1"))

    # -- accepting and closing -------------------------------------------------------

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes | str, bytes | str]] | None = None,
    ) -> None:
        if self.application_state != WebSocketState.CONNECTING:
            raise RuntimeError('Cannot call "accept" once the WebSocket is accepted or closed.')
        extra = [(_text(k), _text(v)) for k, v in headers or ()]
        self._conn.accept(subprotocol, extra)
        self.__dict__["application_state"] = WebSocketState.CONNECTED
        self.__dict__["client_state"] = WebSocketState.CONNECTED

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self.application_state in (WebSocketState.DISCONNECTED, WebSocketState.RESPONSE):
            raise RuntimeError('Cannot call "close" once a close has been sent.')
        if self.application_state == WebSocketState.CONNECTING:  # refused: the route answers 403
            self.__dict__["_refusal"] = (code, reason or "")
            self.__dict__["application_state"] = WebSocketState.RESPONSE
            return
        self._conn.close(code, reason or "")
        self.__dict__["application_state"] = WebSocketState.DISCONNECTED

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order."""
        offered = ",".join(self.headers.getlist("sec-websocket-protocol"))
        return [p.strip() for p in offered.split(",") if p.strip()]

    # -- receiving -----------------------------------------------------------------------

    # Every coroutine between the handler and the parked future is a frame an
    # idle connection keeps (about 250 B) and one more resume per message: the
    # receive calls wait in their own frame (receive, _message), and the typed
    # ones return _message's coroutine instead of awaiting it in one more.

    async def receive(self) -> dict[str, Any]:
        """The next message as an ASGI event: ``websocket.connect`` (first, before
        accept), ``websocket.receive`` with ``text`` or ``bytes``, or
        ``websocket.disconnect`` with ``code`` and ``reason``."""
        if self.application_state == WebSocketState.CONNECTING:
            if self._connect_seen:
                raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')
            self.__dict__["_connect_seen"] = True
            return {"type": "websocket.connect"}
        if self.client_state == WebSocketState.DISCONNECTED:
            raise RuntimeError('Cannot call "receive" once a disconnect message has been received.')
        conn = self._conn
        while (message := conn.take()) is None:  # None: nothing yet; wait for the loop to park a message
            parked = _future(self)
            if conn.park(parked):
                await parked
        if isinstance(message, int):
            self.__dict__["client_state"] = WebSocketState.DISCONNECTED
            return {"type": "websocket.disconnect", "code": message, "reason": self._conn.close_reason or ""}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    def _connected(self) -> None:
        if self.application_state != WebSocketState.CONNECTED:
            raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')

    async def _message(self, kind: type | None) -> Any:
        """The next message's data, of type ``kind`` (str, bytes), or as JSON (None)."""
        self._connected()
        conn = self._conn
        while (message := conn.take()) is None:
            parked = _future(self)
            if conn.park(parked):
                await parked
        if isinstance(message, int):
            self.__dict__["client_state"] = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(message, conn.close_reason)
        if kind is None:
            return json.loads(message)
        if not isinstance(message, kind):
            raise TypeError(
                f"expected a {'text' if kind is str else 'binary'} message, received a "
                f"{'binary' if kind is str else 'text'} one"
            )
        return message

    def receive_text(self) -> Coroutine[Any, Any, str]:
        """The next message, a text one (``await websocket.receive_text()``)."""
        return self._message(str)

    def receive_bytes(self) -> Coroutine[Any, Any, bytes]:
        """The next message, a binary one."""
        return self._message(bytes)

    def receive_json(self, mode: str = "text") -> Coroutine[Any, Any, Any]:
        """The next message (text or binary: ``mode``) read as JSON."""
        if mode not in {"text", "binary"}:
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        return self._message(None)

    async def iter_text(self) -> AsyncIterator[str]:
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    # -- sending ---------------------------------------------------------------------------

    async def _send(self, data: str | bytes) -> None:
        if self.application_state != WebSocketState.CONNECTED:
            raise RuntimeError('Cannot call "send" once a close message has been sent.')
        conn = self._conn
        sent = conn.send(data)
        if not sent:
            self.__dict__["application_state"] = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(1006)
        while sent == 2:  # over the bound: wait until the connection takes more
            parked = _future(self)
            if not conn.park_send(parked):
                return
            await parked

    async def send(self, message: dict[str, Any]) -> None:
        """An ASGI event: ``websocket.accept``, ``websocket.send`` (``text`` or
        ``bytes``) or ``websocket.close``."""
        kind = message.get("type")
        if kind == "websocket.accept":
            await self.accept(message.get("subprotocol"), message.get("headers"))
        elif kind == "websocket.send":
            text = message.get("text")
            await self._send(text if text is not None else message["bytes"])
        elif kind == "websocket.close":
            await self.close(message.get("code", 1000), message.get("reason"))
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r}")

    async def send_text(self, data: str) -> None:
        await self._send(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(bytes(data))

    async def send_json(self, data: Any, mode: str = "text") -> None:
        if mode not in {"text", "binary"}:
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        text = _encode_json(data)
        await self._send(text if mode == "text" else text.encode())

    def __repr__(self) -> str:
        return f"<WebSocket {self.path} {self.application_state.name}>"


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


async def broadcast(websockets: Iterable[WebSocket], message: str | bytes | Any) -> int:
    """Send one message to many connections: encoded once (JSON for anything but
    str/bytes, UTF-8 once for text) and handed to the server's loop once, which
    frames it into each connection's output (each connection's own compressor
    where permessage-deflate was agreed: its window is its own) and writes each
    once. Connections that are gone or closed are skipped. Returns how many got it."""
    data = message if isinstance(message, (str, bytes)) else _encode_json(message)
    conns = [ws._conn for ws in websockets if ws.application_state == WebSocketState.CONNECTED]
    try:
        return _core.ws_broadcast(conns, data)
    except ValueError:  # connections of more than one server (app): one by one
        return sum(1 for conn in conns if conn.send(data))


class Running:
    """The WebSocket handlers of one app that are running, by ticket (in the
    order they started): a TestClient waits for the one its session started."""

    def __init__(self) -> None:
        import threading

        self.next = 0
        self.active: set[int] = set()
        self.changed = threading.Condition()

    def start(self) -> int:
        with self.changed:
            ticket, self.next = self.next, self.next + 1
            self.active.add(ticket)
            return ticket

    def finish(self, ticket: int) -> None:
        with self.changed:
            self.active.discard(ticket)
            self.changed.notify_all()


def endpoint(
    binder: Callable[..., Any],
    websocket_class: type[WebSocket],
    on_error: Callable[[BaseException], None],
    report: Callable[[BaseException], None],
    running: Running,
) -> Callable[[Any], Any]:
    """What the C core calls for a WebSocket route: runs the binder (which runs
    the handler) with Starlette's rules for how it ends. ``on_error``: a handler
    failure after accept (logged); ``report``: a disconnect the handler let
    through (a TestClient raises it, as Starlette's does)."""
    from catzilla.exceptions import RequestValidationError
    from catzilla.response import Response

    def refused(code: int, reason: str = "") -> Response:
        return Response(
            _encode_json({"detail": "WebSocket refused", "code": code, "reason": reason}),
            status_code=403,
            media_type="application/json",
        )

    async def run(raw: Any, ws: WebSocket | None = None) -> Any:
        """``ws``: the WebSocket a middleware chain made for the handshake.
        One coroutine for all of it: an idle connection keeps its frame."""
        ticket = running.start()
        try:
            if ws is None:
                ws = websocket_class(raw)
            try:
                result = binder(raw, ws)
                if inspect.iscoroutine(result):
                    await result
            except WebSocketDisconnect as gone:
                report(gone)
            except Exception as exc:
                if ws.application_state == WebSocketState.CONNECTING:
                    if isinstance(exc, WebSocketException):
                        return refused(exc.code, exc.reason)
                    if isinstance(exc, RequestValidationError):
                        return refused(1008, "invalid request")  # FastAPI closes with 1008
                    raise  # an HTTPException among them: its status
                if ws.application_state == WebSocketState.CONNECTED:
                    code, reason = (exc.code, exc.reason) if isinstance(exc, WebSocketException) else (1011, "")
                    if not isinstance(exc, WebSocketException):
                        on_error(exc)
                    ws._conn.close(code, reason)
                return None
            if ws.application_state == WebSocketState.CONNECTING:
                return refused(1000, "the handler returned without accepting")
            if ws.application_state == WebSocketState.RESPONSE:
                return refused(*ws.__dict__["_refusal"])
            return None
        finally:
            running.finish(ticket)

    return run
