"""``/openapi.json`` and ``/docs``, served by the app itself, nothing from a CDN.

The docs page is Swagger UI from the ``swagger_ui_bundle`` package
(``pip install catzilla[docs]``, which installs ``swagger-ui-bundle-v2``,
Apache-2.0, Swagger UI 5 with OpenAPI 3.1 support; the older
``swagger-ui-bundle`` 1.x, Swagger UI 4, works too: the page then presents
the document as 3.0). Its assets are read from the package and served under
``{docs_url}/assets/``. Without the package, ``/docs`` is a small built-in
page (shipped with catzilla) that lists the operations and can call them.
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
import weakref
from pathlib import Path
from typing import Any

from catzilla.response import HTMLResponse, Response, json_bytes_response

ASSETS = (
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
    "oauth2-redirect.html",
    "oauth2-redirect.js",
)
FALLBACK = Path(__file__).with_name("fallback.html")


def swagger_ui_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    path = Path(str(swagger_ui_bundle.swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def swagger_major(path: Path) -> int:
    m = re.search(r"swagger-ui-(\d+)", path.name)
    return int(m.group(1)) if m else 5


def swagger_html(title: str, openapi_url: str, docs_url: str, major: int) -> str:
    assets = f"{docs_url}/assets"
    # Swagger UI 4 refuses "openapi": "3.1.x": hand it the document marked 3.0.3.
    load = (
        (
            f"fetch({json.dumps(openapi_url)}).then(r => r.json()).then(spec => {{ spec.openapi = '3.0.3'; "
            "start({spec}); });"
        )
        if major < 5
        else f"start({{url: {json.dumps(openapi_url)}}});"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)} - Swagger UI</title>
<link rel="stylesheet" type="text/css" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
function start(source) {{
  window.ui = SwaggerUIBundle(Object.assign({{
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    oauth2RedirectUrl: window.location.origin + "{docs_url}/oauth2-redirect",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  }}, source));
}}
{load}
</script>
</body>
</html>
"""


def served_schema(app: Any) -> dict[str, Any]:
    """``app.openapi()`` as ``/openapi.json`` serves it: with the app's ``root_path`` as
    its first server (FastAPI's ``root_path_in_servers``)."""
    schema: dict[str, Any] = app.openapi()
    root = getattr(app, "root_path", "")
    if root and getattr(app, "root_path_in_servers", True):
        servers = list(schema.get("servers") or [])
        if root not in {s.get("url") for s in servers}:
            schema = dict(schema, servers=[{"url": root}, *servers])
    return schema


def install(app: Any, openapi_url: str, docs_url: str | None, redoc_url: str | None = None) -> None:
    """Add ``/openapi.json`` and the docs pages (and their assets) to ``app``; they are
    not in the schema. ``redoc_url`` serves the built-in page: no ReDoc bundle is
    shipped, and nothing is loaded from a CDN."""
    cache: dict[str, Any] = {}
    app_ref = weakref.ref(app)

    def openapi_json() -> Response:
        schema = served_schema(app_ref())
        if cache.get("schema") != schema:
            cache["schema"] = schema
            cache["body"] = json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode()
        return json_bytes_response(cache["body"])

    assets = swagger_ui_dir()
    # the page's own links carry the path an app is mounted under
    root = getattr(app, "root_path", "")
    builtin = (
        FALLBACK.read_text("utf-8")
        .replace("{{title}}", html.escape(app.title))
        .replace("{{openapi_url}}", json.dumps(root + openapi_url))
    )
    options = {"include_in_schema": False}
    app._add(openapi_url, openapi_json, ["GET"], "openapi", [], options, internal=True)
    if redoc_url is not None:
        redoc_page = builtin.replace(" - API docs</title>", " - ReDoc</title>")

        def redoc() -> HTMLResponse:
            return HTMLResponse(redoc_page)

        app._add(redoc_url, redoc, ["GET"], "redoc_html", [], options, internal=True)
    if docs_url is None:
        return
    if assets is not None:
        page = swagger_html(app.title, root + openapi_url, root + docs_url, swagger_major(assets))
    else:
        page = builtin

    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    app._add(docs_url, docs, ["GET"], "swagger_ui_html", [], options, internal=True)
    if assets is None:
        return
    files: dict[str, tuple[bytes, dict[str, str]]] = {}

    def asset(name: str) -> Response:
        if name not in ASSETS or not (assets / name).is_file():
            return Response("Not Found", status_code=404, media_type="text/plain")
        if name not in files:
            media = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if media.startswith("text/") or media.endswith("javascript"):
                media += "; charset=utf-8"
            files[name] = (
                (assets / name).read_bytes(),
                {"content-type": media, "cache-control": "public, max-age=86400"},
            )
        body, headers = files[name]
        return Response(body, headers=headers)  # a new one each time: middleware may edit it

    def oauth2_redirect() -> Response:
        return asset("oauth2-redirect.html")

    app._add(f"{docs_url}/assets/{{name}}", asset, ["GET"], "swagger_ui_asset", [], options, internal=True)
    app._add(f"{docs_url}/oauth2-redirect", oauth2_redirect, ["GET"], "swagger_ui_redirect", [], options, internal=True)
