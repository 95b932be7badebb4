"""``get_openapi``: the OpenAPI document of a list of routes, as FastAPI's
``fastapi.openapi.utils.get_openapi`` (for an app that customizes its
document: ``app.openapi = my_openapi``)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from catzilla.openapi.schema import build_openapi

__all__ = ["get_openapi"]


def get_openapi(
    *,
    title: str,
    version: str,
    openapi_version: str = "3.1.0",
    summary: str | None = None,
    description: str | None = None,
    routes: Sequence[Any],
    tags: list[dict[str, Any]] | None = None,
    servers: list[dict[str, Any]] | None = None,
    terms_of_service: str | None = None,
    contact: dict[str, Any] | None = None,
    license_info: dict[str, Any] | None = None,
    separate_input_output_schemas: bool = True,
    webhooks: Sequence[Any] | None = None,
    **_: Any,
) -> dict[str, Any]:
    """The document for ``routes`` (``app.routes``) and ``webhooks`` (``app.webhooks.routes``)
    with this metadata."""
    source = SimpleNamespace(
        routes=list(routes),
        title=title,
        version=version,
        summary=summary,
        description=description or "",
        openapi_tags=tags,
        servers=servers,
        terms_of_service=terms_of_service,
        contact=contact,
        license_info=license_info,
        separate_input_output_schemas=separate_input_output_schemas,
        webhooks=list(webhooks or []),
    )
    doc = build_openapi(source)
    doc["openapi"] = openapi_version
    return doc
