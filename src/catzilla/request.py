"""The Request a handler receives: a lazy, Starlette-like view of one HTTP request.

Nothing is built until it is asked for: a handler that reads only the path
never pays for headers, query parsing or cookies.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from functools import cached_property
from typing import Any
from urllib.parse import unquote

from catzilla import _json
from catzilla._core import RawRequest
from catzilla.datastructures import (
    FORM_LIMITS,
    URL,
    Address,
    FormData,
    Headers,
    QueryParams,
    Ready,
    State,
    form_items,
)
from catzilla.proxy import ProxyView, resolve


def in_async_code() -> bool:
    """True on a thread running an asyncio loop (an async handler's)."""
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio._get_running_loop() is not None


def maybe_awaitable(value: Any) -> Any:
    """``value``, or an awaitable of it in async code: ``request.json()`` in a
    sync handler, ``await request.json()`` in an async one (as in Starlette)."""
    return Ready(value) if in_async_code() else value


def _count(value: int | float, name: str) -> int:
    """A limit of ``request.form()``: an int >= 0, or ``math.inf`` for none."""
    if value == float("inf"):
        return sys.maxsize
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"request.form(): {name} must be an int >= 0 or math.inf, got {value!r}")
    return value


class ClientDisconnect(Exception):
    """The request's body cannot be read whole: its client went away (as in
    Starlette), or the server answered it already (the body passed its route's
    ``max_body_size``: 413; it was malformed: 400; it stopped coming: 408).
    ``status_code`` says which (499: the client left)."""

    def __init__(self, status_code: int = 499) -> None:
        self.status_code = status_code
        super().__init__(
            "the client went away before the request body was read"
            if status_code == 499
            else f"the request body cannot be read whole: the server answered it {status_code}"
        )


async def _arrivals(stream: Any) -> AsyncIterator[bytes]:
    """The pieces of a body as the connection hands them over (the C core
    reads the next one once this one is taken)."""
    asyncio = sys.modules["asyncio"]
    loop = asyncio.get_running_loop()
    while True:
        piece = stream.take()
        if piece is None:
            parked = loop.create_future()
            if stream.park(parked):
                await parked
            continue
        if isinstance(piece, int):
            raise ClientDisconnect(piece)
        if not piece:
            return
        yield piece


class PendingBody:
    """``request.body`` while the body is still arriving (an async handler whose
    route reads it as a stream): ``await request.body()`` reads it whole."""

    __slots__ = ("_request",)

    def __init__(self, request: Request) -> None:
        self._request = request

    def __call__(self) -> Any:
        return self._request._read_body()

    def __bytes__(self) -> bytes:
        raise RuntimeError(
            "the request body is still arriving: use `await request.body()` or "
            "`async for chunk in request.stream()` in an async handler"
        )

    __len__ = __iter__ = decode = __bytes__


class _Stream:
    """``request.stream()``: ``async for`` in an async handler, ``for`` in a sync one."""

    __slots__ = ("_request",)

    def __init__(self, request: Request) -> None:
        self._request = request

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._request._chunks()

    def __iter__(self) -> Iterator[bytes]:
        body = self._request.body
        if isinstance(body, PendingBody):
            bytes(body)  # raises, saying what to do instead
        if body:
            yield bytes(body)
        yield b""


class BodyBytes(bytes):
    """The body: bytes (``request.body`` in a sync handler), and callable as in
    Starlette (``await request.body()`` in an async one)."""

    def __call__(self) -> Any:
        return maybe_awaitable(bytes(self))


def parse_cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name, value = name.strip(), value.strip()
        if not sep and not name:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies[name] = unquote(value)
    return cookies


TEST_SCHEME_HEADER = "x-catzilla-testclient-scheme"  # TestClient's, honoured only under it
TEST_ROOT_PATH_HEADER = "x-catzilla-testclient-root-path"


class HTTPConnection:
    """What a request and a WebSocket share (Starlette's name): the URL, the
    headers, the parameters, the cookies, the client, per-connection state."""

    __slots__ = ("__dict__", "_raw")
    app: Any = None  # the Catzilla app (set on each app's subclass)

    def __init__(self, raw: RawRequest) -> None:
        self._raw = raw

    @cached_property
    def state(self) -> State:
        """Per-request attributes, e.g. set by middleware for the handler."""
        return State()

    @cached_property
    def path(self) -> str:
        """The path, percent-decoded."""
        raw = self._raw.path
        return unquote(raw) if "%" in raw else raw

    @cached_property
    def headers(self) -> Headers:
        return Headers(self._raw.headers)

    @cached_property
    def query_params(self) -> QueryParams:
        return QueryParams(self._raw.query_string)

    @cached_property
    def path_params(self) -> dict[str, str]:
        """The route's path parameters, percent-decoded, as strings."""
        return {k: unquote(v) if "%" in v else v for k, v in self._raw.path_params.items()}

    @cached_property
    def _proxied(self) -> ProxyView | None:
        """The proxy headers' view, when the app honours them and the peer is a trusted proxy."""
        app = self.app
        trusted = getattr(app, "_proxy_trusted", None) if app is not None else None
        if trusted is None:
            return None
        headers = self.headers
        return resolve(trusted, self._raw.client, headers, headers.getlist)

    @cached_property
    def url(self) -> URL:
        view = self._proxied
        scheme = (view.scheme if view is not None else None) or getattr(self._raw, "scheme", None) or "http"
        host = (view.host if view is not None else None) or self.headers.get("host", "")
        if self.test_client is not None and self.headers.get(TEST_SCHEME_HEADER) == "https":
            scheme = "https"  # TestClient(base_url="https://..."): the URL the test wrote
        return URL(scheme, host, self.path, self._raw.query_string.decode("latin-1"))

    @property
    def root_path(self) -> str:
        """The path prefix the app is served under: ``TestClient(root_path=...)``'s, as
        a proxy that strips it would say, else the app's ``root_path``; under another
        ASGI server, the scope's (uvicorn's ``--root-path``, a Starlette ``Mount``)."""
        served_under: str | None = getattr(self._raw, "root_path", None)
        if served_under is not None:
            return served_under
        app = getattr(self, "app", None)
        own = str(getattr(app, "root_path", "") or "")
        if self.test_client is not None and not getattr(app, "root_path_given", False):
            given = self.headers.get(TEST_ROOT_PATH_HEADER)
            if given is not None:
                return given + own  # the proxy's prefix, then the mount's
        return own

    @cached_property
    def scope(self) -> dict[str, Any]:
        """An ASGI-like view of the request (read only), for code written against
        Starlette's ``request.scope``: type, method, scheme, path, root_path, query
        string, headers (bytes pairs), client, path parameters and app. Over ASGI
        (the app served by another server, or through ASGI middleware) it is the
        request's ASGI scope itself, with what middleware put there (``session``)."""
        asgi_scope: dict[str, Any] | None = getattr(self._raw, "asgi_scope", None)
        if asgi_scope is not None:
            asgi_scope.setdefault("path_params", self.path_params)
            asgi_scope.setdefault("app", getattr(self, "app", None))
            return asgi_scope
        url = self.url
        client = self.client
        return {
            "type": "http",
            "http_version": "1.1",
            "method": self._raw.method,
            "scheme": url.scheme,
            "path": self.path,
            "raw_path": self._raw.path.encode("latin-1"),
            "root_path": self.root_path,
            "query_string": self._raw.query_string,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self._raw.headers],
            "client": tuple(client) if client is not None else None,
            "path_params": self.path_params,
            "app": getattr(self, "app", None),
        }

    @property
    def session(self) -> dict[str, Any]:
        """The session a session middleware put in the ASGI scope (Starlette's
        ``SessionMiddleware``, added with ``app.add_middleware``)."""
        scope = self.scope
        if "session" not in scope:
            raise AssertionError("SessionMiddleware must be installed to access request.session")
        session: dict[str, Any] = scope["session"]
        return session

    @cached_property
    def cookies(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for header in self.headers.getlist("cookie"):
            cookies.update(parse_cookies(header))
        return cookies

    # TestClient's: the client address the app sees (Starlette's ("testclient", 50000)).
    test_client: tuple[str, int] | None = None

    @cached_property
    def client(self) -> Address | None:
        view = self._proxied
        if view is not None and view.client is not None:
            return Address(*view.client)
        peer = self.test_client or self._raw.client
        return None if peer is None else Address(*peer)

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """The absolute URL of the route or mount called ``name`` (``app.url_path_for``),
        on the scheme and host this request came to."""
        path = self.app.url_path_for(name, **path_params)
        own = str(getattr(self.app, "root_path", "") or "")
        if own and path.startswith(own):
            path = path[len(own) :]
        return URL(self.url.scheme, self.url.netloc, self.root_path + path, "")


class Request(HTTPConnection):
    __slots__ = ()

    @cached_property
    def method(self) -> str:
        return self._raw.method

    @property
    def body(self) -> Any:
        """The body: bytes in a sync handler; ``await request.body()`` in an async
        one (a ``BodyBytes``, or a ``PendingBody`` while it is still arriving)."""
        body: BodyBytes | None = self.__dict__.get("_body")
        if body is not None:
            return body
        if self._raw.body_stream is not None:
            return PendingBody(self)
        body = self.__dict__["_body"] = BodyBytes(self._raw.body)
        return body

    async def _read_body(self) -> bytes:
        body = self.__dict__.get("_body")
        if body is None:
            if self.__dict__.get("_streamed"):
                raise RuntimeError("the request body was already read by request.stream()")
            self.__dict__["_streamed"] = True
            pieces = [piece async for piece in _arrivals(self._raw.body_stream)]
            body = self.__dict__["_body"] = BodyBytes(b"".join(pieces))
        return bytes(body)

    async def _chunks(self) -> AsyncIterator[bytes]:
        body = self.__dict__.get("_body")
        if body is None and self._raw.body_stream is not None:
            if self.__dict__.get("_streamed"):
                raise RuntimeError("the request body was already read by request.stream()")
            self.__dict__["_streamed"] = True
            async for piece in _arrivals(self._raw.body_stream):
                yield piece
            yield b""
            return
        if body is None:
            body = self.body
        if body:
            yield bytes(body)
        yield b""

    @property
    def http_version(self) -> str:
        return self._raw.http_version

    def text(self) -> str:
        """The body decoded with the charset of Content-Type (UTF-8 by default)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        return bytes(self.body).decode(charset)

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON. Awaitable in
        async code (``await request.json()``)."""
        if isinstance(self.body, PendingBody):
            return self._json_async()
        return maybe_awaitable(_json.loads(self.body))

    async def _json_async(self) -> Any:
        return _json.loads(await self._read_body())

    def _parsed_form(self, limits: dict[str, int]) -> FormData:
        form = self.__dict__.get("_form")
        if form is None:  # parsed once, as Starlette's: later limits do not apply
            form = self._raw.form  # parsed already for the endpoint's Form/File parameters
            if form is None:
                form = self._raw.form = FormData(form_items(self._raw, self.body, limits))
            self.__dict__["_form"] = form
        return form

    def form(
        self,
        *,
        max_files: int | float = FORM_LIMITS["max_files"],
        max_fields: int | float = FORM_LIMITS["max_fields"],
        max_part_size: int = FORM_LIMITS["max_part_size"],
    ) -> Any:
        """The body as a form (urlencoded or multipart, files as ``UploadFile``):
        a FormData; awaitable in async code (``await request.form()``).
        HTTPException 400 when it is malformed or has more files or fields, or a
        bigger field, than the limits (Starlette's names and defaults), 413 past
        the route's size limits."""
        limits = {
            "max_files": _count(max_files, "max_files"),
            "max_fields": _count(max_fields, "max_fields"),
            "max_part_size": _count(max_part_size, "max_part_size"),
        }
        if isinstance(self.body, PendingBody):
            return self._form_async(limits)
        return maybe_awaitable(self._parsed_form(limits))

    async def _form_async(self, limits: dict[str, int]) -> FormData:
        await self._read_body()
        return self._parsed_form(limits)

    def stream(self) -> _Stream:
        """The body in pieces, as it arrives: ``async for chunk in
        request.stream()`` in an async handler (the client is read as the
        handler takes them), ``for chunk in request.stream()`` in a sync one
        (the body is whole by then). Ends with an empty chunk, as in Starlette;
        ``ClientDisconnect`` when the body cannot be read whole."""
        return _Stream(self)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"
