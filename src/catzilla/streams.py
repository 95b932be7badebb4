"""Handlers that ``yield``: each item is sent as soon as it is produced (FastAPI's form).

::

    @app.get("/items/stream")
    async def stream_items() -> AsyncIterable[Item]:
        for item in items:
            yield item

A handler written with ``yield`` (sync or async) streams its items:

- by default as JSON Lines (``application/jsonl``): each item as JSON, one per line;
  without a return annotation, a handler whose first item is ``bytes`` or ``str``
  streams its items as they are instead (raw chunks, as a returned generator does);
- with ``response_class=EventSourceResponse`` as server-sent events: each item is
  the ``data:`` of one event, as JSON. A ``ServerSentEvent`` item sets the event's
  fields itself: its ``data`` is sent as JSON (a ``str`` too, quoted), its
  ``raw_data`` as it is. An async source gets a ``: ping`` comment after 15 s
  without an event;
- with any other ``response_class`` (``StreamingResponse``...) as the raw chunks,
  the class given the generator as its content.

The return annotation (``AsyncIterable[Item]``, ``Iterable[Item]``, ``AsyncIterator``,
``Generator[Item, None, None]``...) names the item type: each item is checked
and serialized as that type (a model's fields by its library; an item that is
not one is a ``ResponseValidationError``), and the OpenAPI document gives it as
the ``itemSchema`` of the response's media type. Without one, items are encoded
as they are (``jsonable_encoder``).

The items of a sync generator are produced on the server's loop thread, one per
loop iteration while the client keeps up (``StreamingResponse``'s rule): a
generator that blocks holds up other requests, so write blocking producers as
``async`` generators that await their waits.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from catzilla import models
from catzilla.encoders import jsonable_encoder
from catzilla.exceptions import ResponseValidationError
from catzilla.response import Response, StreamingResponse, json_dumps_bytes
from catzilla.sse import EventSourceResponse, ServerSentEvent

JSONL = "application/jsonl"
EVENT_STREAM = "text/event-stream"
_ITERABLES = {
    collections.abc.Iterable,
    collections.abc.Iterator,
    collections.abc.Generator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncIterator,
    collections.abc.AsyncGenerator,
}


def item_type(annotation: Any) -> Any:
    """``Item`` of ``AsyncIterable[Item]`` (or another iterable ABC), else None."""
    if typing.get_origin(annotation) in _ITERABLES:
        args = typing.get_args(annotation)
        if args and args[0] is not Any:
            return args[0]
    return None


class Stream:
    """How one yielding handler's items go out; ``endpoint`` is what the route calls
    (it takes the handler's parameters and returns the streaming response)."""

    def __init__(
        self,
        handler: Callable[..., Any],
        hints: dict[str, Any],
        response_class: type[Response] | None,
        status_code: int | None,
        exclude_none: bool = False,
        exclude_unset: bool = False,
    ) -> None:
        self.handler = handler
        self.is_async = inspect.isasyncgenfunction(handler) or inspect.isasyncgenfunction(
            getattr(handler, "__call__", None)  # noqa: B004 (a callable instance)
        )
        if response_class is not None and issubclass(response_class, EventSourceResponse):
            self.media_type: str | None = EVENT_STREAM
        elif response_class is None or response_class.media_type == "application/json":
            self.media_type = JSONL
        else:
            self.media_type = None  # raw chunks, the class's own media type
        self.response_class = response_class
        self.status_code = 200 if status_code is None else status_code
        item = item_type(hints.get("return"))
        # A ServerSentEvent is how an event goes out, not what it carries
        self.item_type = None if item is ServerSentEvent else item
        self._adapter = models.adapter_for(self.item_type) if self.item_type is not None else None
        self._exclude = {"exclude_none": exclude_none, "exclude_unset": exclude_unset}
        self.endpoint = self._endpoint(hints)

    # ---- items ------------------------------------------------------------------------------

    def item_json(self, item: Any) -> bytes:
        """One item as JSON: checked against the item type when there is one."""
        if self._adapter is None:
            return json_dumps_bytes(jsonable_encoder(item))
        try:
            value = self._adapter.coerce(item)
        except models.ModelError as exc:
            raise ResponseValidationError(exc.errors) from None
        return self._adapter.dump_json(value, **self._exclude)

    def event(self, item: Any) -> bytes:
        """One item as a server-sent event (``\\n`` line ends, as FastAPI writes them)."""
        if isinstance(item, ServerSentEvent):
            if item.raw_data is not None:
                data: str | None = item.raw_data
            elif item.data is not None:
                data = json_dumps_bytes(jsonable_encoder(item.data)).decode()
            else:
                data = None
            return ServerSentEvent(
                data, event=item.event, id=item.id, retry=item.retry, comment=item.comment, sep="\n"
            ).encode()
        return ServerSentEvent(self.item_json(item).decode(), sep="\n").encode()

    # ---- the response ---------------------------------------------------------------------

    def response(self, source: Any) -> Response:
        if self.media_type == JSONL:
            return StreamingResponse(self._lines(source), self.status_code, media_type=JSONL)
        if self.media_type == EVENT_STREAM:
            assert self.response_class is not None
            events = self._events_async(source) if self.is_async else self._events_sync(source)
            resp = self.response_class(events, self.status_code, sep="\n")  # type: ignore[call-arg]
            resp.set_header("cache-control", "no-cache")
            return resp
        assert self.response_class is not None
        return self.response_class(source, self.status_code)

    def _lines(self, source: Any) -> Any:
        if self.is_async:

            async def lines() -> AsyncIterator[bytes]:
                try:
                    async for item in source:
                        yield self.item_json(item) + b"\n"
                finally:
                    await source.aclose()  # the handler's finally runs when the client leaves

            return lines()

        def lines_sync() -> Iterator[bytes]:
            try:
                for item in source:
                    yield self.item_json(item) + b"\n"
            finally:
                source.close()

        return lines_sync()

    async def _events_async(self, source: Any) -> AsyncIterator[bytes]:
        try:
            async for item in source:
                yield self.event(item)
        finally:
            await source.aclose()

    def _events_sync(self, source: Any) -> Iterator[bytes]:
        try:
            for item in source:
                yield self.event(item)
        finally:
            source.close()

    # ---- unannotated: raw chunks or JSON Lines, by the first item -----------------------------

    def _by_first_item(self, first: Any, rest: Any) -> Response:
        if isinstance(first, (bytes, str)):
            return StreamingResponse(rest, self.status_code)
        return StreamingResponse(self._lines(rest), self.status_code, media_type=JSONL)

    def _sniff_sync(self, source: Any) -> Response:
        try:
            first = next(source)
        except StopIteration:
            return StreamingResponse(iter(()), self.status_code)

        def rest() -> Iterator[Any]:
            try:
                yield first
                yield from source
            finally:
                source.close()

        return self._by_first_item(first, rest())

    async def _sniff_async(self, source: Any) -> Response:
        try:
            first = await source.__anext__()
        except StopAsyncIteration:
            return StreamingResponse(iter(()), self.status_code)

        async def rest() -> AsyncIterator[Any]:
            try:
                yield first
                async for item in source:
                    yield item
            finally:
                await source.aclose()

        return self._by_first_item(first, rest())

    def _endpoint(self, hints: dict[str, Any]) -> Callable[..., Any]:
        handler, respond = self.handler, self.response
        if self.media_type == JSONL and self._adapter is None:
            if self.is_async:

                async def sniffing_async(*args: Any, **kwargs: Any) -> Response:
                    return await self._sniff_async(handler(*args, **kwargs))

                return self._as_handler(sniffing_async, hints)

            def sniffing_sync(*args: Any, **kwargs: Any) -> Response:
                return self._sniff_sync(handler(*args, **kwargs))

            return self._as_handler(sniffing_sync, hints)
        if self.is_async:

            async def endpoint_async(*args: Any, **kwargs: Any) -> Response:
                return respond(handler(*args, **kwargs))

            endpoint: Callable[..., Any] = endpoint_async
        else:

            def endpoint_sync(*args: Any, **kwargs: Any) -> Response:
                return respond(handler(*args, **kwargs))

            endpoint = endpoint_sync
        return self._as_handler(endpoint, hints)

    def _as_handler(self, endpoint: Callable[..., Any], hints: dict[str, Any]) -> Callable[..., Any]:
        handler = self.handler
        functools.update_wrapper(endpoint, handler, updated=())
        del endpoint.__wrapped__  # type: ignore[attr-defined]  # its kind is its own: a function
        # the handler's parameters, with their annotations resolved where the handler lives
        endpoint.__signature__ = inspect.signature(handler).replace(  # type: ignore[attr-defined]
            return_annotation=inspect.Signature.empty
        )
        endpoint.__annotations__ = {k: v for k, v in hints.items() if k != "return"}
        return endpoint
