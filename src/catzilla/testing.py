"""``TestClient``: an httpx client talking to the app over a real loopback socket.

::

    from catzilla.testing import TestClient

    with TestClient(app) as client:
        assert client.get("/items/1").json() == {...}

Entering the block starts ``app`` on ``127.0.0.1`` (an ephemeral port) in a
thread, through the same C server ``listen()`` uses, with its startup hooks;
leaving it stops the server (graceful, shutdown hooks run). Without ``with``,
the server starts on the first request and stops at ``close()``.

As Starlette's, by default an exception a handler does not handle is raised
in the test (``raise_server_exceptions=True``); pass False to get the 500.
Requires ``httpx`` (``pip install catzilla[test]``).
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

__all__ = ["TestClient"]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class TestClient(httpx.Client):
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Any,
        base_url: str | None = None,
        raise_server_exceptions: bool = True,
        timeout: float = 30.0,
        follow_redirects: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            base_url=base_url or "http://127.0.0.1", timeout=timeout, follow_redirects=follow_redirects, **kwargs
        )
        self.app = app
        self.raise_server_exceptions = raise_server_exceptions
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._server_exc: BaseException | None = None
        self._lock = threading.Lock()
        self.port: int | None = None

    # -- server lifecycle --------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            self._error = None

            def announce(port: int) -> None:
                self.port = port
                ready.set()

            def serve() -> None:
                try:
                    self.app._serve("127.0.0.1", 0, {}, announce=announce)
                except BaseException as exc:  # startup or bind failed
                    self._error = exc
                finally:
                    ready.set()

            self.app._exception_sink = self._record
            self._thread = threading.Thread(target=serve, name="catzilla-testclient", daemon=True)
            self._thread.start()
            if not ready.wait(START_TIMEOUT):
                raise RuntimeError("the app did not start listening in time")
            if self._error is not None or self.port is None:
                self._thread.join(STOP_TIMEOUT)
                self._thread = None
                self.app._exception_sink = None
                error = self._error or RuntimeError("the server stopped before it was ready")
                raise error
            self.base_url = httpx.URL(f"http://127.0.0.1:{self.port}")

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self.app.stop()
            thread.join(STOP_TIMEOUT)
            self.app._exception_sink = None
            self.port = None
            if self._error is not None:  # a shutdown hook failed
                error, self._error = self._error, None
                raise error

    def _record(self, exc: BaseException) -> None:
        self._server_exc = exc

    def _take_server_exc(self) -> BaseException | None:
        """What the server thread recorded during the request (a method, so that
        type checkers do not take the attribute for the None set before it)."""
        exc, self._server_exc = self._server_exc, None
        return exc

    # -- httpx.Client ------------------------------------------------------------------

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:
        if self._thread is None:
            self.start()
        self._server_exc = None
        response = super().request(method, url, **kwargs)
        exc = self._take_server_exc()
        if exc is not None and self.raise_server_exceptions:
            raise exc
        return response

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
