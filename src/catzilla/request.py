"""The Request a handler receives: a lazy, Starlette-like view of one HTTP request.

Nothing is built until it is asked for: a handler that reads only the path
never pays for headers, query parsing or cookies.
"""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any
from urllib.parse import unquote

from catzilla import _json
from catzilla._core import RawRequest
from catzilla.datastructures import URL, Address, FormData, Headers, QueryParams, Ready, State, form_items


def in_async_code() -> bool:
    """True on a thread running an asyncio loop (an async handler's)."""
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio._get_running_loop() is not None


def maybe_awaitable(value: Any) -> Any:
    """``value``, or an awaitable of it in async code: ``request.json()`` in a
    sync handler, ``await request.json()`` in an async one (as in Starlette)."""
    return Ready(value) if in_async_code() else value


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


class Request:
    __slots__ = ("__dict__", "_raw")
    app: Any = None  # the Catzilla app (set on each app's Request subclass)

    def __init__(self, raw: RawRequest) -> None:
        self._raw = raw

    @cached_property
    def state(self) -> State:
        """Per-request attributes, e.g. set by middleware for the handler."""
        return State()

    @cached_property
    def method(self) -> str:
        return self._raw.method

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
    def url(self) -> URL:
        host = self.headers.get("host", "")
        return URL("http", host, self.path, self._raw.query_string.decode("latin-1"))

    @cached_property
    def cookies(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for header in self.headers.getlist("cookie"):
            cookies.update(parse_cookies(header))
        return cookies

    @cached_property
    def client(self) -> Address | None:
        peer = self._raw.client
        return None if peer is None else Address(*peer)

    @cached_property
    def body(self) -> BodyBytes:
        return BodyBytes(self._raw.body)

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
        return self.body.decode(charset)

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON. Awaitable in
        async code (``await request.json()``)."""
        return maybe_awaitable(_json.loads(self.body))

    @cached_property
    def _form(self) -> FormData:
        return FormData(form_items(self._raw))

    def form(self) -> Any:
        """The body as a form (urlencoded or multipart, files as ``UploadFile``):
        a FormData; awaitable in async code (``await request.form()``).
        HTTPException 400/413 when a multipart body cannot be read."""
        return maybe_awaitable(self._form)

    async def stream(self) -> Any:
        """The body in pieces (``async for chunk in request.stream()``); the
        body has been read whole by then (up to ``max_body_size``)."""
        yield bytes(self.body)
        yield b""

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """The absolute URL of the route or mount called ``name`` (``app.url_path_for``),
        on the scheme and host this request came to."""
        path = self.app.url_path_for(name, **path_params)
        return URL(self.url.scheme, self.url.netloc, path, "")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"
