"""Responses a handler may return, as in Starlette."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from catzilla import _json
from catzilla.background import BackgroundTask

# Compact JSON, as FastAPI writes it (NaN and infinities refused); orjson
# when installed, the same bytes either way (catzilla._json).
json_dumps = _json.dumps
json_dumps_bytes = _json.dumps_bytes


class MutableHeaders(MutableMapping[str, str]):
    """A response's headers, case-insensitive, editable in place (as in Starlette):
    ``response.headers["X-Time"] = "3"``. ``getlist``/``append`` for repeated names."""

    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    def __getitem__(self, name: str) -> str:
        lname = name.lower()
        for k, v in reversed(self._response._headers):
            if k.lower() == lname:
                return v
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        self._response.set_header(name, value)

    def __delitem__(self, name: str) -> None:
        lname = name.lower()
        before = len(self._response._headers)
        self._response._headers = [(k, v) for k, v in self._response._headers if k.lower() != lname]
        if len(self._response._headers) == before:
            raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for k, _ in self._response._headers:
            seen.setdefault(k.lower(), None)
        return iter(seen)

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._response._headers})

    def getlist(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self._response._headers if k.lower() == lname]

    def append(self, name: str, value: str) -> None:
        self._response._headers.append((name, value))

    def __repr__(self) -> str:
        return f"MutableHeaders({self._response._headers!r})"


class Response:
    media_type: str | None = None
    charset = "utf-8"
    # Run once the response is written (a streamed one: once it is over), on the
    # asyncio loop, as Starlette's: BackgroundTask(func, *args) or BackgroundTasks.
    background: BackgroundTask | None = None

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if isinstance(status_code, bool) or not isinstance(status_code, int) or not 100 <= status_code <= 999:
            raise ValueError(f"status_code must be an int in 100..999, got {status_code!r}")
        self.status_code = status_code
        if background is not None:
            self.background = background
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self.raw_headers = []
        has_type = False
        for name, value in (headers or {}).items():
            self.raw_headers.append((name, value))
            has_type = has_type or name.lower() == "content-type"
        if self.media_type is not None and not has_type:
            ct = self.media_type
            if ct.startswith("text/") and "charset=" not in ct.lower():
                ct += f"; charset={self.charset}"
            self.raw_headers.append(("content-type", ct))

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(f"{type(self).__name__} content must be str or bytes, got {type(content).__name__}")

    @property
    def headers(self) -> MutableHeaders:
        """The headers, case-insensitive (last value wins), editable in place.
        ``raw_headers`` lists every line, repeats included."""
        return MutableHeaders(self)

    # ``raw_headers`` (every header line, in order, as (name, value)) is a plain
    # attribute: the C core reads it for every response.
    raw_headers: list[tuple[str, str]]

    @property
    def _headers(self) -> list[tuple[str, str]]:
        return self.raw_headers

    @_headers.setter
    def _headers(self, value: list[tuple[str, str]]) -> None:
        self.raw_headers = value

    def set_header(self, name: str, value: str) -> None:
        lname = name.lower()
        self._headers = [(k, v) for k, v in self._headers if k.lower() != lname]
        self._headers.append((name, value))

    def append_header(self, name: str, value: str) -> None:
        self._headers.append((name, value))

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        parts = [f"{key}={quote(value, safe='')}"]
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if expires is not None:
            if isinstance(expires, datetime):
                from email.utils import format_datetime  # the email package costs 2 MiB of RSS: only here

                expires = format_datetime(expires, usegmt=True)
            parts.append(f"expires={expires}")
        if path is not None:
            parts.append(f"Path={path}")
        if domain is not None:
            parts.append(f"Domain={domain}")
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite is not None:
            if samesite.lower() not in ("lax", "strict", "none"):
                raise ValueError(f"samesite must be 'lax', 'strict' or 'none', got {samesite!r}")
            parts.append(f"SameSite={samesite}")
        self._headers.append(("set-cookie", "; ".join(parts)))

    def delete_cookie(self, key: str, path: str = "/", domain: str | None = None) -> None:
        self.set_cookie(key, max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT", path=path, domain=domain)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code} {len(self.body)} bytes>"


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_dumps_bytes(content)


class HTMLResponse(Response):
    media_type = "text/html"


class PlainTextResponse(Response):
    media_type = "text/plain"


class RedirectResponse(Response):
    def __init__(
        self,
        url: str,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(None, status_code, headers, background=background)
        self.set_header("location", quote(str(url), safe=":/%#?=@[]!$&'()*+,;"))


def json_bytes_response(body: bytes, status_code: int = 200) -> JSONResponse:
    """A JSONResponse around JSON already encoded (model serializers' output), built without checks."""
    r = object.__new__(JSONResponse)
    r.status_code = status_code
    r.body = body
    r.raw_headers = [("content-type", "application/json")]
    return r


class StreamingResponse(Response):
    """A body produced piece by piece, as in Starlette: ``content`` is a sync or
    async iterable (a generator, an async generator, ...) of ``bytes`` or ``str``.

    The C core writes each piece as it comes: chunked for HTTP/1.1 (or, when a
    ``content-length`` header is given, exactly that many bytes), until the
    close for HTTP/1.0. A sync iterator is advanced once per loop iteration
    and only while the client keeps up (other connections are served in
    between); an async one runs on the asyncio loop, one step at a time. When
    the client goes away the iterator is closed (``close()`` / ``aclose()``:
    its ``finally`` runs). An exception after the head was sent cuts the body
    short and closes the connection; it is logged on ``catzilla.error``.
    """

    body_iterator: Iterable[Any] | AsyncIterable[Any]

    def __init__(
        self,
        content: Iterable[Any] | AsyncIterable[Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if not isinstance(content, (Iterable, AsyncIterable)) or isinstance(content, (str, bytes)):
            raise TypeError(
                f"StreamingResponse content must be an iterable or async iterable of bytes or str, "
                f"got {type(content).__name__}"
            )
        super().__init__(None, status_code, headers, media_type, background)
        self.body = None  # type: ignore[assignment]  # the C core reads body_iterator instead
        self.body_iterator = content

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code} streamed>"


class FileResponse(Response):
    """A file, sent by the C core with ``sendfile`` (never read into Python), as
    in Starlette: ``Content-Type`` from the name (``mimetypes``), ``ETag`` and
    ``Last-Modified`` from the open file, ``Content-Disposition`` when
    ``filename`` is given (RFC 5987 ``filename*`` for non-ASCII names).

    With ``status_code=200`` conditional requests (``If-None-Match``,
    ``If-Modified-Since`` -> 304; ``If-Match``, ``If-Unmodified-Since`` ->
    412) and a single byte ``Range`` (206, ``If-Range``; unsatisfiable ->
    416; several ranges -> the whole file) are answered; HEAD sends the head
    only. A file that does not exist answers 404, one that cannot be read
    500, each with a line on ``catzilla.error``; a file that shrinks while it
    is sent closes the connection rather than send a wrong length.
    ``stat_result`` is accepted for Starlette's signature; the open file's
    own status is what counts.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        self.path = path
        self.filename = filename
        self.stat_result = stat_result
        self._fspath = os.fsencode(path)
        if media_type is None:
            media_type = mimetypes.guess_type(filename or os.fsdecode(self._fspath))[0] or "text/plain"
        super().__init__(None, status_code, headers, media_type, background)
        self.body = None  # type: ignore[assignment]  # the C core sends the file
        if filename is not None and "content-disposition" not in {k.lower() for k, _ in self.raw_headers}:
            quoted = quote(filename)
            if quoted != filename:
                disposition = f"{content_disposition_type}; filename*=utf-8''{quoted}"
            else:
                disposition = f'{content_disposition_type}; filename="{filename}"'
            self.raw_headers.append(("content-disposition", disposition))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code} {os.fsdecode(self._fspath)!r}>"
