"""Server-sent events (``text/event-stream``), with sse-starlette's names.

::

    from catzilla.sse import EventSourceResponse, ServerSentEvent

    @app.get("/events")
    async def events(request: Request):
        last = request.headers.get("last-event-id")   # where a reconnecting client left off
        async def stream():
            n = int(last or 0)
            while True:
                n += 1
                yield ServerSentEvent(data=f"tick {n}", id=n, event="tick")
                await asyncio.sleep(1)
        return EventSourceResponse(stream(), ping=15)

Items may be ``ServerSentEvent``, a ``dict`` of its fields, ``str``
(the data) or ``bytes`` (sent as they are). Each event is written as soon as
it is produced (no buffering). With an async source, a comment line
(``: ping``) goes out after ``ping`` seconds without an event, which keeps
proxies from closing an idle stream and lets the server notice a client
that went away; a sync source gets no pings.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any

from catzilla.background import BackgroundTask
from catzilla.response import StreamingResponse

__all__ = ["EventSourceResponse", "ServerSentEvent"]

DEFAULT_PING_INTERVAL = 15.0
_LINES = re.compile(r"\r\n|\r|\n")


class ServerSentEvent:
    """One event: ``data`` (any text; several lines become several ``data:``
    fields), ``event``, ``id``, ``retry`` (ms) and a ``comment``. ``raw_data``
    is FastAPI's name for text sent as it is: here ``data`` is sent as text too,
    but a handler that yields events (catzilla.streams) sends ``data`` as JSON
    and only ``raw_data`` as it is."""

    def __init__(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: int | str | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str = "\r\n",
        raw_data: str | None = None,
    ) -> None:
        for name, value in (("event", event), ("id", id)):
            if value is not None and _LINES.search(str(value)):
                raise ValueError(f"an event's {name} cannot hold a line break, got {value!r}")
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
            raise ValueError(f"retry must be an int of milliseconds >= 0, got {retry!r}")
        if data is not None and raw_data is not None:
            raise ValueError("an event has data or raw_data, not both")
        self.data, self.event, self.id, self.retry, self.comment, self.sep = data, event, id, retry, comment, sep
        self.raw_data = raw_data

    def encode(self) -> bytes:
        sep, out = self.sep, list[str]()
        if self.comment is not None:
            out.extend(f": {line}{sep}" for line in _LINES.split(str(self.comment)))
        if self.id is not None:
            out.append(f"id: {self.id}{sep}")
        if self.event is not None:
            out.append(f"event: {self.event}{sep}")
        data = self.data if self.raw_data is None else self.raw_data
        if data is not None:
            out.extend(f"data: {line}{sep}" for line in _LINES.split(str(data)))
        if self.retry is not None:
            out.append(f"retry: {self.retry}{sep}")
        out.append(sep)
        return "".join(out).encode("utf-8")


def _encode(item: Any, sep: str) -> bytes:
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, Mapping):
        return ServerSentEvent(**item, sep=sep).encode()
    if isinstance(item, bytes):
        return item
    return ServerSentEvent(item, sep=sep).encode()


SSE_QUEUE = 16  # events read ahead of the client at most


class EventSourceResponse(StreamingResponse):
    def __init__(
        self,
        content: Iterable[Any] | AsyncIterable[Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
        ping: float | None = None,
        sep: str = "\r\n",
        ping_message_factory: Callable[[], ServerSentEvent] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if sep not in ("\r\n", "\r", "\n"):
            raise ValueError(f"sep must be '\\r\\n', '\\r' or '\\n', got {sep!r}")
        self.ping_interval = DEFAULT_PING_INTERVAL if ping is None else float(ping)
        if self.ping_interval <= 0:
            raise ValueError(f"ping must be a number of seconds > 0, got {ping!r}")
        self.sep = sep
        self.ping_message_factory = ping_message_factory
        merged = {"cache-control": "no-store", "x-accel-buffering": "no"}
        merged.update(headers or {})
        body: Iterable[bytes] | AsyncIterable[bytes]
        if isinstance(content, AsyncIterable):
            body = self._async_events(content)
        elif isinstance(content, Iterable) and not isinstance(content, (str, bytes)):
            body = self._sync_events(content)
        else:
            raise TypeError(
                f"EventSourceResponse content must be an iterable or async iterable, got {type(content).__name__}"
            )
        super().__init__(body, status_code, merged, media_type, background)

    def _ping(self) -> bytes:
        if self.ping_message_factory is not None:
            return _encode(self.ping_message_factory(), self.sep)
        return ServerSentEvent(comment="ping", sep=self.sep).encode()

    def _sync_events(self, content: Iterable[Any]) -> Iterator[bytes]:
        it = iter(content)
        try:
            for item in it:
                yield _encode(item, self.sep)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    async def _async_events(self, content: AsyncIterable[Any]) -> AsyncIterator[bytes]:
        """The source's events, with a ping after every ping_interval of quiet.

        One reader task drains the source into a queue and one timer, re-armed
        at each event, adds the pings: no task or timeout per event."""
        import asyncio

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=SSE_QUEUE)  # the source waits on a slow client
        done = object()
        it = content.__aiter__()

        async def read() -> None:
            try:
                async for item in it:
                    await queue.put(item)
            except BaseException as exc:  # handed to the response, raised there
                await queue.put(exc)
                return
            await queue.put(done)

        timer: asyncio.TimerHandle | None = None

        def ping() -> None:
            nonlocal timer
            if queue.empty():  # events waiting need no ping
                queue.put_nowait(None)
            timer = loop.call_later(self.ping_interval, ping)

        reader = loop.create_task(read())
        timer = loop.call_later(self.ping_interval, ping)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    yield self._ping()
                    continue
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                timer.cancel()
                timer = loop.call_later(self.ping_interval, ping)
                yield _encode(item, self.sep)
        finally:
            timer.cancel()
            if not reader.done():
                reader.cancel()  # into the source's await: its finally runs
                with contextlib.suppress(BaseException):
                    await reader
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):  # already closed by the cancellation
                    await aclose()
