"""``TestClient``: an httpx client talking to the app over a real loopback socket.

::

    from catzilla.testing import TestClient

    with TestClient(app) as client:
        assert client.get("/items/1").json() == {...}

Entering the block starts ``app`` on ``127.0.0.1`` (an ephemeral port) in a
thread, through the same C server ``listen()`` uses, with its startup hooks;
leaving it stops the server (graceful, shutdown hooks run). Without ``with``,
the server starts on the first request and stops at ``close()``. Several
clients of one app share its server: it starts with the first and stops
when the last one closes. Streamed responses work as in httpx:
``with client.stream("GET", "/events") as r: for line in r.iter_lines(): ...``.

As Starlette's, by default an exception a handler does not handle is raised
in the test (``raise_server_exceptions=True``); pass False to get the 500.
WebSockets as in Starlette, over the real socket (the ``websockets``
package's client)::

    with client.websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_json() == {...}

A handshake the app refuses raises ``WebSocketDisconnect`` with the close
code it refused with (1000 when it returned without accepting); the
connection's end raises it from ``receive_*``.

Requires ``httpx`` (``pip install catzilla[test]``; ``websockets`` too for
``websocket_connect``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import httpx

from catzilla.request import TEST_ROOT_PATH_HEADER, TEST_SCHEME_HEADER

__all__ = ["TestClient", "WebSocketTestSession"]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class _Served:
    """One app's test server, shared by every TestClient of that app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.clients = 0
        self.port: int | None = None
        self.error: BaseException | None = None  # startup, bind or shutdown failure
        self.server_exc: BaseException | None = None  # the last one a handler did not handle
        ready = threading.Event()

        def announce(port: int) -> None:
            self.port = port
            ready.set()

        def serve() -> None:
            try:
                app._serve("127.0.0.1", 0, {}, announce=announce)
            except BaseException as exc:  # reported to the clients
                self.error = exc
            finally:
                ready.set()

        app._exception_sink = self._record
        app._request_class.test_client = ("testclient", 50000)
        self.thread = threading.Thread(target=serve, name="catzilla-testclient", daemon=True)
        self.thread.start()
        if not ready.wait(START_TIMEOUT):
            raise RuntimeError("the app did not start listening in time")
        if self.error is not None or self.port is None:
            self.thread.join(STOP_TIMEOUT)
            app._exception_sink = None
            raise self.error or RuntimeError("the server stopped before it was ready")

    def _record(self, exc: BaseException) -> None:
        self.server_exc = exc

    def take_exc(self) -> BaseException | None:
        """What a handler raised during the last request, once (a method: type
        checkers would take the attribute for the None set before the request)."""
        exc, self.server_exc = self.server_exc, None
        return exc

    def stop(self) -> None:
        self.app.stop()
        self.thread.join(STOP_TIMEOUT)
        self.app._exception_sink = None
        self.app._request_class.test_client = None
        if self.error is not None:  # a shutdown hook failed
            raise self.error


_SERVED: dict[int, _Served] = {}  # id(app) -> its running test server
_SERVED_LOCK = threading.Lock()


class _Loopback(httpx.HTTPTransport):
    """Sends every request to the app's test server on 127.0.0.1, whatever host
    its URL names (``http://testserver`` by default); the ``Host`` header keeps
    the name, so the app sees the URL the test wrote."""

    def __init__(self, client: TestClient, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.client._served is None:
            self.client.start()
        if request.url.scheme == "https":
            request.headers[TEST_SCHEME_HEADER] = "https"
        root = self.client.root_path
        if root:
            # as behind a proxy that strips the prefix: the app sees the rest
            request.headers[TEST_ROOT_PATH_HEADER] = root
            path = request.url.raw_path
            if path == root.encode() or path.startswith(root.encode() + b"/") or path.startswith(root.encode() + b"?"):
                request.url = request.url.copy_with(raw_path=path[len(root) :] or b"/")
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.client.port)
        return super().handle_request(request)


BACKGROUND_TIMEOUT = 30.0


class TestClient(httpx.Client):
    """As Starlette's: ``http://testserver`` is the base URL, ``testclient`` the
    user agent and the client's host the app sees; background tasks a request
    started have run when the call returns."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Any,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        timeout: float = 30.0,
        follow_redirects: bool = True,
        headers: dict[str, str] | None = None,
        cookies: Any = None,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.raise_server_exceptions = raise_server_exceptions
        self.root_path = root_path
        self._served: _Served | None = None
        self.port: int | None = None
        all_headers = {"user-agent": "testclient", **(headers or {})}
        super().__init__(
            base_url=base_url,
            timeout=timeout,
            follow_redirects=follow_redirects,
            headers=all_headers,
            cookies=cookies,
            transport=_Loopback(self),
            **kwargs,
        )

    # -- server lifecycle --------------------------------------------------------

    def start(self) -> None:
        with _SERVED_LOCK:
            if self._served is not None:
                return
            served = _SERVED.get(id(self.app))
            if served is None or not served.thread.is_alive():
                served = _SERVED[id(self.app)] = _Served(self.app)
            served.clients += 1
            self._served = served
            self.port = served.port

    def stop(self) -> None:
        with _SERVED_LOCK:
            served, self._served = self._served, None
            if served is None:
                return
            self.port = None
            served.clients -= 1
            if served.clients > 0:
                return
            del _SERVED[id(self.app)]
        served.stop()

    # -- httpx.Client ------------------------------------------------------------------

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if self._served is None:
            self.start()
        served = self._served
        assert served is not None
        served.server_exc = None
        response = super().send(request, **kwargs)
        if not kwargs.get("stream"):
            self.app._runner.wait_background(BACKGROUND_TIMEOUT)
        exc = served.take_exc()
        if exc is not None and self.raise_server_exceptions:
            raise exc
        return response

    def websocket_connect(
        self, url: str, subprotocols: list[str] | None = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> WebSocketTestSession:
        """Open a WebSocket to the app (Starlette's TestClient API); use it with ``with``."""
        if self._served is None:
            self.start()
        return WebSocketTestSession(self, url, subprotocols, headers)

    def __enter__(self) -> TestClient:
        super().__enter__()
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.stop()
        finally:
            super().__exit__(*exc_info)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            super().close()


class WebSocketTestSession:
    """One WebSocket to the app under test (Starlette's ``WebSocketTestSession`` API)."""

    __test__ = False

    def __init__(
        self, client: TestClient, url: str, subprotocols: list[str] | None, headers: dict[str, str] | None
    ) -> None:
        self._client = client
        self._url = url
        self._subprotocols = subprotocols
        self._headers = dict(headers or {})
        self._conn: Any = None
        self._cm: Any = None
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] = []

    def __enter__(self) -> WebSocketTestSession:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        from catzilla.websockets import WebSocketDisconnect

        path = self._url if self._url.startswith("/") else httpx.URL(self._url).raw_path.decode()
        served = self._client._served
        assert served is not None
        served.server_exc = None
        self._first_ticket = self._client.app._ws_running.next  # this session's handler starts at or after it
        cookies = "; ".join(f"{k}={v}" for k, v in self._client.cookies.items())
        if cookies and "cookie" not in {k.lower() for k in self._headers}:
            self._headers["cookie"] = cookies
        try:
            self._cm = connect(
                f"ws://127.0.0.1:{self._client.port}{path}",
                subprotocols=self._subprotocols,  # type: ignore[arg-type]
                additional_headers={"user-agent": "testclient", **self._headers},
                open_timeout=self._client.timeout.connect or 30.0,
                max_size=None,
            )
            self._conn = self._cm.__enter__()
        except InvalidStatus as refused:
            self._raise_server_exc()
            code = 1000
            with contextlib.suppress(ValueError, AttributeError):  # the 403's body says the close code
                code = int(json.loads(refused.response.body or b"{}").get("code", 1000))
            if refused.response.status_code != 403:
                raise
            raise WebSocketDisconnect(code) from None
        self.accepted_subprotocol = self._conn.subprotocol
        self.extra_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self._conn.response.headers.raw_items()
        ]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
        # As Starlette's: the app's handler ends before the block does, and what it
        # let through (e.g. WebSocketDisconnect) is raised here.
        running = self._client.app._ws_running
        first = self._first_ticket
        with running.changed:
            running.changed.wait_for(lambda: not any(t >= first for t in running.active), timeout=STOP_TIMEOUT)
        self._raise_server_exc()

    def _raise_server_exc(self) -> None:
        served = self._client._served
        exc = served.take_exc() if served is not None else None
        if exc is not None and self._client.raise_server_exceptions:
            raise exc

    # -- sending -------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close":
            self.close(message.get("code", 1000), message.get("reason"))
        elif message.get("text") is not None:
            self.send_text(message["text"])
        else:
            self.send_bytes(message["bytes"])

    def send_text(self, data: str) -> None:
        self._conn.send(data)

    def send_bytes(self, data: bytes) -> None:
        self._conn.send(bytes(data))

    def send_json(self, data: Any, mode: str = "text") -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        self._conn.send(text if mode == "text" else text.encode())

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self._conn is not None:
            self._conn.close(code, reason or "")
            self._cm.__exit__(None, None, None)
            self._conn = None

    # -- receiving -------------------------------------------------------------------------

    def _recv(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        from catzilla.websockets import WebSocketDisconnect

        try:
            return self._conn.recv(timeout=self._client.timeout.read)  # type: ignore[no-any-return]
        except ConnectionClosed as closed:
            self._raise_server_exc()
            rcvd = closed.rcvd
            raise WebSocketDisconnect(rcvd.code if rcvd else 1006, rcvd.reason if rcvd else "") from None

    def receive(self) -> dict[str, Any]:
        from catzilla.websockets import WebSocketDisconnect

        try:
            data = self._recv()
        except WebSocketDisconnect as gone:
            return {"type": "websocket.close", "code": gone.code, "reason": gone.reason}
        key = "text" if isinstance(data, str) else "bytes"
        return {"type": "websocket.send", key: data}

    def receive_text(self) -> str:
        data = self._recv()
        if not isinstance(data, str):
            raise TypeError("expected a text message, received a binary one")
        return data

    def receive_bytes(self) -> bytes:
        data = self._recv()
        if not isinstance(data, bytes):
            raise TypeError("expected a binary message, received a text one")
        return data

    def receive_json(self, mode: str = "text") -> Any:
        return json.loads(self._recv())
