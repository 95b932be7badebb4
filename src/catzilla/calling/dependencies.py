"""What runs generator dependencies (``Depends`` itself is a marker: catzilla.params).

A dependency is any callable; its own parameters are bound like a handler's
(query, headers, body, ``Request``, other dependencies). The tree is solved
once, when the route is added: a dependency used twice in one request (with
``use_cache=True``, the default) is one call whose result is shared.

A generator dependency (``yield``, sync or async) is entered before the
handler and closed once the handler's response has been built; when the
handler raises, the exception is thrown into the generator at its ``yield``
(so ``try/except/finally`` around ``yield`` works as in FastAPI).
``app.dependency_overrides[dep] = replacement`` swaps a dependency, for tests.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

# ---- run-time helpers the compiled binders call (only routes with generator dependencies) ----


def enter_sync(gen: Generator[Any, None, None], stack: list[Any]) -> Any:
    value = next(gen)
    stack.append(gen)
    return value


async def enter_async(gen: AsyncGenerator[Any, None], stack: list[Any]) -> Any:
    value = await gen.__anext__()
    stack.append(gen)
    return value


def _finished(gen: Any) -> None:
    raise RuntimeError(f"dependency {getattr(gen, '__name__', gen)!r} yielded more than once")


def close_sync(stack: list[Any]) -> None:
    """Close generators, innermost first, after a successful handler."""
    error: BaseException | None = None
    while stack:
        gen = stack.pop()
        try:
            if error is None:
                next(gen)
                _finished(gen)
            else:
                gen.throw(error)
        except StopIteration:
            pass
        except BaseException as exc:  # an exit step raised: the outer ones see it
            error = exc
    if error is not None:
        raise error


SWALLOWED = (
    "No response: the application raised an exception and a dependency with yield caught it "
    "(a bare except, or except Exception) without raising it again"
)


def _swallowed(exc: BaseException) -> BaseException:
    """What a generator that caught ``exc`` and ended leaves to raise (FastAPI's FastAPIError)."""
    from catzilla.exceptions import CatzillaError

    error = CatzillaError(SWALLOWED)
    error.__cause__ = exc
    return error


def unwind_sync(stack: list[Any], exc: BaseException) -> BaseException:
    """Throw the handler's exception into each generator, innermost first.

    Returns the exception to raise: the handler's own, or one a generator
    raised instead (e.g. an HTTPException from its ``except`` block). A
    generator that swallows the exception does not turn it into a success:
    a ``CatzillaError`` says so (a 500), as FastAPI's ``FastAPIError``.
    """
    while stack:
        gen = stack.pop()
        try:
            gen.throw(exc)
        except StopIteration:
            exc = _swallowed(exc)
        except BaseException as raised:
            exc = raised
        else:
            exc = RuntimeError(f"dependency {getattr(gen, '__name__', gen)!r} yielded more than once")
    return exc


async def close_async(stack: list[Any]) -> None:
    error: BaseException | None = None
    while stack:
        gen = stack.pop()
        is_async = hasattr(gen, "__anext__")
        try:
            if error is None:
                if is_async:
                    await gen.__anext__()
                else:
                    next(gen)
                _finished(gen)
            elif is_async:
                await gen.athrow(error)
            else:
                gen.throw(error)
        except (StopIteration, StopAsyncIteration):
            pass
        except BaseException as exc:
            error = exc
    if error is not None:
        raise error


async def unwind_async(stack: list[Any], exc: BaseException) -> BaseException:
    while stack:
        gen = stack.pop()
        try:
            if hasattr(gen, "__anext__"):
                await gen.athrow(exc)
            else:
                gen.throw(exc)
        except (StopIteration, StopAsyncIteration):
            exc = _swallowed(exc)
        except BaseException as raised:
            exc = raised
        else:
            exc = RuntimeError(f"dependency {getattr(gen, '__name__', gen)!r} yielded more than once")
    return exc
