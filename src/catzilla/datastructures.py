"""Small immutable multi-value mappings: headers, query parameters, URLs;
form data and uploaded files."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Mapping
from typing import IO, Any, NamedTuple
from urllib.parse import parse_qsl, unquote_plus

from catzilla import _core

# An uploaded file stays in memory up to this size, then goes to a temporary
# file (as in Starlette); one with no name on disk, so it is gone when closed.
# The C spool's threshold (csrc/multipart/cz_spool.h), for the files made here.
SPOOL_MAX_SIZE = _core.SPOOL_MEMORY_MAX


class State:
    """Free-form attributes (``request.state.user = ...``, ``app.state.db = ...``)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        # only for names never set; also tells type checkers any name may be there
        raise AttributeError(f"'State' object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def __repr__(self) -> str:
        return f"State({self.__dict__!r})"


class Address(NamedTuple):
    host: str
    port: int


class MultiMapping(Mapping[str, str]):
    """An ordered list of (key, value) pairs; a key may repeat.

    ``m[key]`` is the last value for key (as in Starlette), ``getlist(key)``
    all of them in order.
    """

    __slots__ = ("_dict", "_list")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._list = items
        self._dict = {k: v for k, v in items}

    def _key(self, key: str) -> str:
        return key

    def __getitem__(self, key: str) -> str:
        return self._dict[self._key(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._key(key) in self._dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def getlist(self, key: str) -> list[str]:
        k = self._key(key)
        return [v for name, v in self._list if name == k]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._list)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiMapping):
            return sorted(self._list) == sorted(other._list)
        return super().__eq__(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class Headers(MultiMapping):
    """Request headers: names are case-insensitive."""

    __slots__ = ()

    def __init__(self, items: list[tuple[str, str]]) -> None:
        # The C core hands names over lowercased already.
        super().__init__(items)

    def _key(self, key: str) -> str:
        return key.lower()


class QueryParams(MultiMapping):
    """Query string parameters, percent-decoded; keys may repeat."""

    __slots__ = ()

    def __init__(self, query: str | bytes) -> None:
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        super().__init__(parse_qsl(query, keep_blank_values=True))


class URL:
    """The request URL: ``scheme``, ``netloc``, ``path`` (decoded) and ``query`` (raw)."""

    __slots__ = ("netloc", "path", "query", "scheme")

    def __init__(self, scheme: str, netloc: str, path: str, query: str) -> None:
        self.scheme = scheme
        self.netloc = netloc
        self.path = path
        self.query = query

    def __str__(self) -> str:
        from urllib.parse import quote

        q = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.netloc}{quote(self.path, safe='/:@!$&()*+,;=~-._')}{q}"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"


# ---- fast parsing for compiled binders ----------------------------------------------------


def parse_query(query: bytes) -> dict[str, str]:
    """``a=1&b=x+y`` -> {"a": "1", "b": "x y"}; the last of repeated keys wins (as ``QueryParams[key]``)."""
    s = query.decode("latin-1")
    out: dict[str, str] = {}
    if "%" in s or "+" in s:
        for part in s.split("&"):
            if part:
                k, _, v = part.partition("=")
                out[unquote_plus(k)] = unquote_plus(v)
    else:  # the common case: nothing to decode (an empty part only adds the unused key "")
        for part in s.split("&"):
            k, _, v = part.partition("=")
            out[k] = v
    return out


def parse_query_multi(query: bytes) -> dict[str, list[str]]:
    """Every value of every key, in order."""
    s = query.decode("latin-1")
    decode = "%" in s or "+" in s
    out: dict[str, list[str]] = {}
    for part in s.split("&"):
        if part:
            k, _, v = part.partition("=")
            if decode:
                k, v = unquote_plus(k), unquote_plus(v)
            if k in out:
                out[k].append(v)
            else:
                out[k] = [v]
    return out


def parse_form(body: bytes) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (UTF-8)."""
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


class Ready:
    """An awaitable whose value is already there (``await request.json()``)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        yield from ()  # a generator that yields nothing: `await` gets the value at once
        return self.value


class UploadFile:
    """A file sent in a ``multipart/form-data`` body (Starlette's API): ``filename``,
    ``content_type``, ``headers``, ``size``, ``file`` (a binary file object, in
    memory up to 1 MiB, then a nameless temporary file); ``await read()``,
    ``write()``, ``seek()``, ``close()``."""

    def __init__(
        self, file: IO[bytes], *, size: int | None = None, filename: str | None = None, headers: Headers | None = None
    ) -> None:
        self.file = file
        self.size = size
        self.filename = filename
        self.headers = headers if headers is not None else Headers([])

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    async def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    async def write(self, data: bytes) -> None:
        if self.size is not None:
            self.size += len(data)
        self.file.write(data)

    async def seek(self, offset: int) -> None:
        self.file.seek(offset)

    async def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        return f"UploadFile(filename={self.filename!r}, size={self.size!r}, headers={self.headers!r})"


def upload_of(filename: str, headers: list[tuple[str, str]], data: bytes | tuple[int, int]) -> UploadFile:
    """An UploadFile for a file part: its bytes, or (fd, size) of the unnamed
    temporary file the C core spooled it to (the UploadFile owns the fd)."""
    import tempfile  # only for uploads (shutil, random): an app without them does not pay for it

    file: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_SIZE)  # noqa: SIM115 (the UploadFile owns it)
    if isinstance(data, tuple):
        # Already on disk: the spool rolled over to the C core's file, so
        # `file.file` is what Starlette's is (a rolled SpooledTemporaryFile).
        fd, size = data
        file._file.close()
        file._file = os.fdopen(fd, "r+b")
        file._rolled = True
    else:
        size = len(data)
        file.write(data)
    file.seek(0)
    return UploadFile(file, size=size, filename=filename, headers=Headers([(k.lower(), v) for k, v in headers]))


class FormData(Mapping[str, Any]):
    """A form: field names to ``str`` values or ``UploadFile``s; a name may
    repeat (``form[name]`` is the last, ``getlist(name)`` all, in order)."""

    __slots__ = ("_dict", "_list")

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self._list = items
        self._dict = {k: v for k, v in items}

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def getlist(self, key: str) -> list[Any]:
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, Any]]:
        return list(self._list)

    async def close(self) -> None:
        for _, v in self._list:
            if isinstance(v, UploadFile):
                await v.close()

    def __repr__(self) -> str:
        return f"FormData({self._list!r})"


FORM_LIMITS: dict[str, int] = {"max_files": 1000, "max_fields": 1000, "max_part_size": 1024 * 1024}
"""What a form may hold (Starlette's defaults, FastAPI's ``form_limits`` keys): files,
fields that are not files, and the bytes of one such field. Past them: 400."""


def check_form_limits(limits: Any, where: str) -> dict[str, int]:
    """``form_limits`` as given to an app, a group or a route (a dict of some of
    FORM_LIMITS's keys, each an int >= 0), checked; {} for None."""
    if limits is None:
        return {}
    if not isinstance(limits, Mapping):
        raise TypeError(f"{where}: form_limits must be a dict of {', '.join(FORM_LIMITS)}, got {limits!r}")
    for key, value in limits.items():
        if key not in FORM_LIMITS:
            raise ValueError(f"{where}: unknown form limit {key!r}; known: {', '.join(FORM_LIMITS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: form limit {key} must be an int >= 0, got {value!r}")
    return dict(limits)


def c_form_limits(limits: Mapping[str, int]) -> tuple[int, int, int]:
    """``limits`` (every key of FORM_LIMITS) for the C multipart parser: (files,
    fields, field bytes). Its 0 means "its default", so a limit of 0 goes as 1:
    the check of the parsed form (``_over_limits``) refuses the one it lets through."""
    return max(limits["max_files"], 1), max(limits["max_fields"], 1), max(limits["max_part_size"], 1)


def _refuse(status: int, detail: str) -> None:
    from catzilla.exceptions import HTTPException  # exceptions -> response -> here

    raise HTTPException(status_code=status, detail=detail)


def _over_limits(items: list[tuple[str, Any]], limits: Mapping[str, int], kind: str) -> None:
    """400 naming the first of ``limits`` the form's fields go past (the C parser
    stops at the same limits while it reads; this is the last word)."""
    size = limits["max_part_size"]
    files = sum(1 for _, v in items if isinstance(v, UploadFile))
    if files > limits["max_files"]:
        _refuse(400, f"{kind}: too many files")
    if len(items) - files > limits["max_fields"]:
        _refuse(400, f"{kind}: too many fields")
    for _, v in items:  # a str is at most 4 bytes per character: most need no encoding
        if isinstance(v, str) and len(v) > size // 4 and len(v.encode("utf-8", "surrogateescape")) > size:
            _refuse(400, f"{kind}: field too large")


def form_items(raw: Any, body: bytes | None = None, limits: Mapping[str, int] = FORM_LIMITS) -> list[tuple[str, Any]]:
    """The fields of a request's form body (``body``, else the one ``raw``
    holds), urlencoded or multipart (files as ``UploadFile``); HTTPException
    400 (malformed, or past ``limits``, every key of FORM_LIMITS) or 413 (a
    size limit) when it cannot be read, naming why."""
    parts = raw.form_parts  # spooled by the C core as the body arrived, within the route's limits
    if parts is not None:
        items: list[tuple[str, Any]] = []
        for i, (name, filename, ctype, headers, data) in enumerate(parts):
            if filename is None:
                items.append((name, data.decode("utf-8", "replace")))
                continue
            if not isinstance(data, UploadFile):  # made once: it owns the part's file descriptor
                data = upload_of(filename, headers, data)
                parts[i] = (name, filename, ctype, headers, data)
            items.append((name, data))
        _over_limits(items, limits, "multipart")
        return items
    if body is None:
        body = raw.body
    ctype = ""
    for k, v in raw.headers:
        if k == "content-type":
            ctype = v
    if ctype[:10].lower() == "multipart/":
        status, parts = _core.parse_multipart(raw.allocator, body, ctype, *c_form_limits(limits))
        if status:
            _refuse(status, parts)
        items = [
            (name, data.decode("utf-8", "replace") if filename is None else upload_of(filename, headers, data))
            for name, filename, _ctype, headers, data in parts
        ]
        _over_limits(items, limits, "multipart")
        return items
    if ctype.partition(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        items = [(k, v) for k, vs in parse_form(body).items() for v in vs]
        _over_limits(items, limits, "form")
        return items
    return []  # another media type is not a form (as in Starlette)


def json_body_type(headers: list[tuple[str, str]], strict: bool = False) -> bool:
    """``application/json`` or ``application/...+json``, or no (or an empty) Content-Type
    unless ``strict``: what is parsed as JSON (FastAPI's ``strict_content_type``)."""
    media = ""
    for k, v in headers:
        if k == "content-type":
            media = v.partition(";")[0].strip().lower()
    if not media:
        return not strict
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def json_body_type_strict(headers: list[tuple[str, str]]) -> bool:
    return json_body_type(headers, True)


def parse_body_form(raw: Any, limits: Mapping[str, int] = FORM_LIMITS) -> dict[str, list[Any]]:
    """``form_items`` grouped by name, for parameter binding. The form is kept
    on ``raw``: ``request.form()`` in the endpoint returns it (parsed within the
    route's limits, once), as FastAPI's handlers get Starlette's cached form."""
    items = form_items(raw, limits=limits)
    raw.form = FormData(items)
    out: dict[str, list[Any]] = {}
    for k, v in items:
        out.setdefault(k, []).append(v)
    return out


def header_dict(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Lowercased name -> value (the last of repeated names)."""
    return dict(headers)


def header_multi(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in headers:
        out.setdefault(k, []).append(v)
    return out
