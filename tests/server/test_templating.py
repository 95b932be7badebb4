"""catzilla.templating.Jinja2Templates on a real server: Starlette's API
(``TemplateResponse(request, name, context)``, ``url_for`` in templates),
autoescaping, context processors, sync and async handlers."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from catzilla import Catzilla, Request
from catzilla.responses import HTMLResponse
from tests.server.conftest import HOST, serve_in_thread

pytest.importorskip("jinja2", reason="jinja2 is not installed (catzilla[jinja2])")

from catzilla.templating import Jinja2Templates


def _get(port: int, path: str, host: str | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        conn.close()


def test_template_responses_on_a_real_server(tmp_path: Path) -> None:
    (tmp_path / "item.html").write_text(
        "<a href=\"{{ url_for('item', id=id) }}\">{{ name }}</a> {{ site }} {{ request.method }}"
    )
    (tmp_path / "list.html").write_text("{% for n in names %}<li>{{ n }}</li>{% endfor %}")
    templates = Jinja2Templates(directory=tmp_path, context_processors=[lambda request: {"site": "cz"}])
    app = Catzilla(auto_memory_tuning=False)
    seen: list[object] = []

    @app.get("/items/{id}", response_class=HTMLResponse, name="item")
    def item(request: Request, id: int):
        response = templates.TemplateResponse(request, "item.html", {"id": id, "name": "<b>&'\"</b>"})
        seen.append(response)
        return response

    @app.get("/async-list")
    async def async_list(request: Request):
        return templates.TemplateResponse(
            request=request,
            name="list.html",
            context={"names": ["a<", "b"]},
            status_code=201,
            headers={"x-extra": "1"},
        )

    @app.get("/legacy")
    def legacy(request: Request):
        return templates.TemplateResponse("list.html", {"request": request, "names": ["old"]})

    with serve_in_thread(app) as srv:
        status, headers, body = _get(srv.port, "/items/7", host="example.test:8080")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        # url_for: the route named "item", on the host the request came to; the data escaped
        assert body == '<a href="http://example.test:8080/items/7">&lt;b&gt;&amp;&#39;&#34;&lt;/b&gt;</a> cz GET'
        status, headers, body = _get(srv.port, "/async-list")
        assert (status, headers["x-extra"], body) == (201, "1", "<li>a&lt;</li><li>b</li>")
        assert _get(srv.port, "/legacy")[2] == "<li>old</li>"
    response = seen[0]
    assert response.template.name == "item.html"  # type: ignore[attr-defined]
    assert response.context["id"] == 7 and response.context["site"] == "cz"  # type: ignore[attr-defined]


def test_constructor_needs_a_directory_or_an_env() -> None:
    import jinja2

    with pytest.raises(ValueError, match="directory or an env"):
        Jinja2Templates()
    env = jinja2.Environment(loader=jinja2.DictLoader({"t.html": "{{ url_for }}"}))
    templates = Jinja2Templates(env=env)
    assert templates.env is env and "url_for" in env.globals
