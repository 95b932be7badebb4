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

from catzilla.request import Request
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


SWAGGER_UI_DEFAULTS: dict[str, Any] = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
}


def swagger_settings(parameters: dict[str, Any] | None) -> str:
    """Swagger UI's configuration lines, FastAPI's defaults updated by ``parameters``
    (``Catzilla(swagger_ui_parameters=...)``), one ``"key": json,`` a line."""
    merged = {**SWAGGER_UI_DEFAULTS, **(parameters or {})}
    return "".join(f"    {json.dumps(k)}: {json.dumps(v)},\n" for k, v in merged.items())


def swagger_html(
    title: str, openapi_url: str, docs_url: str, major: int, parameters: dict[str, Any] | None = None
) -> str:
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
{swagger_settings(parameters)}    oauth2RedirectUrl: window.location.origin + "{docs_url}/oauth2-redirect",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  }}, source));
}}
{load}
</script>
</body>
</html>
"""


def get_swagger_ui_html(
    *,
    openapi_url: str,
    title: str,
    swagger_js_url: str,
    swagger_css_url: str,
    swagger_favicon_url: str = "",
    oauth2_redirect_url: str | None = None,
    init_oauth: dict[str, Any] | None = None,
    swagger_ui_parameters: dict[str, Any] | None = None,
) -> HTMLResponse:
    """A Swagger UI page loading its assets from the given URLs (FastAPI's
    ``get_swagger_ui_html``, for self-hosted or custom assets: no default CDN)."""
    params = {"dom_id": "#swagger-ui", "layout": "BaseLayout", "deepLinking": True, "showExtensions": True,
              "showCommonExtensions": True, **(swagger_ui_parameters or {})}  # fmt: skip
    settings = "".join(f"{json.dumps(k)}: {json.dumps(v)},\n" for k, v in params.items())
    redirect = (
        f"oauth2RedirectUrl: window.location.origin + {json.dumps(oauth2_redirect_url)}," if oauth2_redirect_url else ""
    )
    oauth = f"ui.initOAuth({json.dumps(init_oauth)})" if init_oauth else ""
    return HTMLResponse(f"""<!DOCTYPE html>
<html>
<head>
<link type="text/css" rel="stylesheet" href="{swagger_css_url}">
<link rel="shortcut icon" href="{swagger_favicon_url}">
<title>{html.escape(title)}</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{swagger_js_url}"></script>
<script>
const ui = SwaggerUIBundle({{
url: {json.dumps(openapi_url)},
{settings}{redirect}
presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}})
{oauth}
</script>
</body>
</html>
""")


def get_redoc_html(
    *,
    openapi_url: str,
    title: str,
    redoc_js_url: str,
    redoc_favicon_url: str = "",
    with_google_fonts: bool = False,
) -> HTMLResponse:
    """A ReDoc page loading ReDoc from ``redoc_js_url`` (FastAPI's ``get_redoc_html``)."""
    return HTMLResponse(f"""<!DOCTYPE html>
<html>
<head>
<title>{html.escape(title)}</title>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="shortcut icon" href="{redoc_favicon_url}">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc requires Javascript to function. Please enable it to browse the documentation.</noscript>
<redoc spec-url="{openapi_url}"></redoc>
<script src="{redoc_js_url}"></script>
</body>
</html>
""")


def get_swagger_ui_oauth2_redirect_html() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page (FastAPI's), one self-contained page."""
    return HTMLResponse(OAUTH2_REDIRECT)


OAUTH2_REDIRECT = """<!doctype html>
<html lang="en-US">
<head><title>Swagger UI: OAuth2 Redirect</title></head>
<body>
<script>
'use strict';
function run () {
    var oauth2 = window.opener.swaggerUIRedirectOauth2;
    var sentState = oauth2.state;
    var redirectUrl = oauth2.redirectUrl;
    var qp = (/code|token|error/.test(window.location.hash) ? window.location.hash : location.search).substring(1);
    var arr = qp.split("&");
    arr.forEach(function (v,i,_arr) { _arr[i] = '"' + v.replace('=', '":"') + '"';});
    qp = qp ? JSON.parse('{' + arr.join() + '}', function (key, value) {
        return key === "" ? value : decodeURIComponent(value); }) : {};
    var isValid = qp.state === sentState;
    if ((oauth2.auth.schema.get("flow") === "accessCode" || oauth2.auth.schema.get("flow") === "authorizationCode"
         || oauth2.auth.schema.get("flow") === "authorization_code") && !oauth2.auth.code) {
        if (!isValid) { oauth2.errCb({authId: oauth2.auth.name, source: "auth", level: "warning",
            message: "Authorization may be unsafe, passed state was changed in server."}); }
        if (qp.code) { delete oauth2.state; oauth2.auth.code = qp.code;
            oauth2.callback({auth: oauth2.auth, redirectUrl: redirectUrl}); }
        else { oauth2.errCb({authId: oauth2.auth.name, source: "auth", level: "error",
            message: "[Authorization failed]: no accessCode received from the server."}); }
    } else { oauth2.callback({auth: oauth2.auth, token: qp, isValid: isValid, redirectUrl: redirectUrl}); }
    window.close();
}
if (document.readyState !== 'loading') { run(); } else { document.addEventListener('DOMContentLoaded', run); }
</script>
</body>
</html>
"""


def served_schema(app: Any, root: str | None = None) -> dict[str, Any]:
    """``app.openapi()`` as ``/openapi.json`` serves it: with the root path (the
    request's, else the app's) as its first server (FastAPI's ``root_path_in_servers``)."""
    schema: dict[str, Any] = app.openapi()
    if root is None:
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

    def openapi_json(request: Request) -> Response:
        schema = served_schema(app_ref(), request.root_path)
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
        parameters = getattr(app, "swagger_ui_parameters", None)
        page = swagger_html(app.title, root + openapi_url, root + docs_url, swagger_major(assets), parameters)
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
