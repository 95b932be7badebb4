"""``Jinja2Templates``, as Starlette's (``fastapi.templating``): HTML pages rendered
with Jinja2 (``pip install jinja2``), with ``url_for`` in every template::

    templates = Jinja2Templates(directory="templates")

    @app.get("/items/{id}", response_class=HTMLResponse)
    def item(request: Request, id: str):
        return templates.TemplateResponse(request=request, name="item.html", context={"id": id})
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from catzilla.background import BackgroundTask
from catzilla.request import Request
from catzilla.response import HTMLResponse

__all__ = ["Jinja2Templates"]


class _TemplateResponse(HTMLResponse):
    """An HTML response that remembers its ``template`` and ``context``."""

    template: Any
    context: dict[str, Any]


class Jinja2Templates:
    def __init__(
        self,
        directory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        context_processors: list[Callable[[Request], dict[str, Any]]] | None = None,
        env: Any = None,
        **env_options: Any,
    ) -> None:
        import jinja2

        if env is None:
            if directory is None:
                raise ValueError("Jinja2Templates needs a directory or an env")
            env_options.setdefault("loader", jinja2.FileSystemLoader(directory))
            env_options.setdefault("autoescape", True)
            env = jinja2.Environment(**env_options)

        @jinja2.pass_context
        def url_for(context: Mapping[str, Any], name: str, /, **path_params: Any) -> Any:
            request: Request = context["request"]
            return request.url_for(name, **path_params)

        env.globals.setdefault("url_for", url_for)
        self.env = env
        self.context_processors = list(context_processors or [])

    def get_template(self, name: str) -> Any:
        return self.env.get_template(name)

    def TemplateResponse(
        self,
        *args: Any,
        request: Request | None = None,
        name: str | None = None,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> HTMLResponse:
        """``TemplateResponse(request, name, context)`` (or by keywords; the older
        ``TemplateResponse(name, {"request": request, ...})`` works too)."""
        if args and isinstance(args[0], str):  # the older form: (name, context, ...)
            name = args[0]
            context = args[1] if len(args) > 1 else context
            request = (context or {}).get("request", request)
        elif args:
            request = args[0]
            name = args[1] if len(args) > 1 else name
            context = args[2] if len(args) > 2 else context
        if request is None or name is None:
            raise TypeError("TemplateResponse needs a request and a template name")
        values = dict(context or {})
        values.setdefault("request", request)
        for processor in self.context_processors:
            values.update(processor(request))
        template = self.get_template(name)
        response = _TemplateResponse(template.render(values), status_code, headers, media_type, background)
        response.template = template
        response.context = values
        return response
