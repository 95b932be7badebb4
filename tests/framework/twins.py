"""Direct and binder twins: one handler served both ways, answers compared byte for byte.

The contract of a direct route (catzilla.calling.plan) is that it answers exactly
as the compiled binder would. ``twins`` adds a handler at ``/d{path}``
(direct) and at ``/b{path}``, where an extra ``request: Request`` parameter
keeps it on the binder; ``same`` sends one request to both.
"""

from __future__ import annotations

import inspect
from typing import Any

from catzilla import Catzilla, Request
from catzilla.params import MODE_DIRECT, MODE_REQUEST
from catzilla.testing import TestClient


def twins(app: Catzilla, method: str, path: str, handler: Any, **options: Any) -> None:
    """``handler`` at ``/d{path}`` (direct) and at ``/b{path}`` (binder), with the same signature."""
    sig = inspect.signature(handler, eval_str=True)  # the twin lives here, away from the handler's names

    def with_request(*args: Any, request: Request, **kwargs: Any) -> Any:
        return handler(*args, **kwargs)

    params = [
        *sig.parameters.values(),
        inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
    ]
    with_request.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    with_request.__annotations__ = {
        **{p.name: p.annotation for p in sig.parameters.values()},
        "return": sig.return_annotation,
        "request": Request,
    }
    app.add_route(f"/d{path}", handler, [method], **options)
    app.add_route(f"/b{path}", with_request, [method], **options)
    modes = {r.path: t[0] for r, t, _ in app._endpoints}
    assert modes[f"/d{path}"] == MODE_DIRECT
    assert modes[f"/b{path}"] == MODE_REQUEST


def same(client: TestClient, method: str, url: str, **kwargs: Any) -> Any:
    d = client.request(method, "/d" + url, **kwargs)
    b = client.request(method, "/b" + url, **kwargs)
    assert (d.status_code, d.headers.get("content-type"), d.content) == (
        b.status_code,
        b.headers.get("content-type"),
        b.content,
    ), url
    return d
