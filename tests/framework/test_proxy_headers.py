"""Proxy headers: believed only from forwarded_allow_ips (TestClient connects from 127.0.0.1)."""

from __future__ import annotations

import pytest

from catzilla import Catzilla, Request
from catzilla.proxy import TrustedHosts
from catzilla.testing import TestClient


def make_app(proxy_headers: bool = True, allow: str = "127.0.0.1") -> Catzilla:
    app = Catzilla(docs_url=None)
    app.proxy_headers = proxy_headers
    app.forwarded_allow_ips = allow

    @app.get("/who")
    def who(request: Request):
        return {"client": request.client.host, "port": request.client.port, "url": str(request.url)}

    return app


XFF = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "example.com"}


def test_off_by_default_in_the_library() -> None:
    app = Catzilla(docs_url=None)
    assert app.proxy_headers is False

    @app.get("/who")
    def who(request: Request):
        return {"client": request.client.host, "scheme": request.url.scheme}

    with TestClient(app) as client:
        assert client.get("/who", headers=XFF).json() == {
            "client": "testclient",
            "scheme": "http",
        }  # as Starlette's TestClient


def test_x_forwarded_from_a_trusted_proxy() -> None:
    with TestClient(make_app()) as client:
        body = client.get("/who?q=1", headers=XFF).json()
    assert body == {"client": "203.0.113.7", "port": 0, "url": "https://example.com/who?q=1"}


@pytest.mark.parametrize("allow", ["10.0.0.0/8", "192.0.2.1", ""])
def test_ignored_from_an_untrusted_peer(allow: str) -> None:
    with TestClient(make_app(allow=allow)) as client:
        body = client.get("/who", headers=XFF).json()
    # not believed: the peer as the TestClient presents it (Starlette's "testclient")
    assert body["client"] == "testclient" and body["url"].startswith("http://") and "example.com" not in body["url"]


def test_client_is_the_nearest_untrusted_hop() -> None:
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.1.2.3"}  # 10.1.2.3: an inner proxy
    with TestClient(make_app(allow="127.0.0.1,10.0.0.0/8")) as client:
        assert client.get("/who", headers=headers).json()["client"] == "203.0.113.7"
    with TestClient(make_app(allow="*")) as client:  # all trusted: the farthest
        assert client.get("/who", headers=headers).json()["client"] == "198.51.100.1"


def test_forwarded_header() -> None:
    headers = {"Forwarded": 'for="[2001:db8::7]:4711";proto=https;host=api.example.org, for=127.0.0.1'}
    with TestClient(make_app()) as client:
        body = client.get("/who", headers=headers).json()
    assert body["client"] == "2001:db8::7"
    assert body["url"] == "https://api.example.org/who"


def test_unknown_scheme_is_ignored() -> None:
    with TestClient(make_app()) as client:
        body = client.get("/who", headers={"X-Forwarded-Proto": "javascript"}).json()
    assert body["url"].startswith("http://")


def test_trusted_hosts() -> None:
    trusted = TrustedHosts("127.0.0.1, 10.0.0.0/8 ,::1,unix:")
    assert "127.0.0.1" in trusted and "10.200.0.1" in trusted and "::1" in trusted
    assert "::ffff:10.0.0.1" in trusted  # IPv4-mapped
    assert "unix:" in trusted and "11.0.0.1" not in trusted and "nonsense" not in trusted
    assert "1.2.3.4" in TrustedHosts("*")
    assert trusted.spec == "127.0.0.1,10.0.0.0/8,::1,unix:"
