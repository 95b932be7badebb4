"""StaticFiles mounted with app.mount, over real sockets: files, index and
404 pages, precompressed variants, conditional requests, and every way out
of the directory a client may try."""

from __future__ import annotations

import gzip
import os
import socket
import time

import httpx
import pytest

from catzilla import Catzilla, Request
from catzilla.routing import NoMatchFound
from catzilla.staticfiles import StaticFiles
from tests.server.conftest import HOST, serve_in_thread


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    site = root / "site"
    (site / "docs").mkdir(parents=True)
    (site / "empty").mkdir()
    (site / "app.css").write_text("body { color: red }")
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "docs" / "index.html").write_text("<h1>docs</h1>")
    (site / "404.html").write_text("<h1>nothing here</h1>")
    (site / "data.json").write_text('{"a": 1}')
    (site / "café.txt").write_text("accents")
    (site / "big.js").write_text("x" * 5000)
    (site / "big.js.gz").write_bytes(gzip.compress(b"x" * 5000))
    (site / "big.js.br").write_bytes(b"brotli bytes")
    (site / "only-gz.txt").write_text("plain")
    (site / "only-gz.txt.gz").write_bytes(gzip.compress(b"plain"))
    (root / "secret.txt").write_text("outside the directory")
    os.symlink(root / "secret.txt", site / "escape")  # leads outside
    os.symlink("app.css", site / "inside")  # stays inside
    return root


@pytest.fixture(scope="module")
def served(tree):
    app = Catzilla()
    app.mount("/static", StaticFiles(directory=tree / "site"), name="static")
    app.mount("/site", StaticFiles(directory=tree / "site", html=True), name="site")
    app.mount("/plain", StaticFiles(directory=tree / "site", precompressed=False))
    app.mount("/follow", StaticFiles(directory=tree / "site", follow_symlink=True))

    @app.get("/api")
    def api() -> dict[str, bool]:
        return {"api": True}

    with serve_in_thread(app) as srv:
        yield srv


def raw_get(port: int, target: bytes, extra: bytes = b"") -> tuple[int, bytes, bytes]:
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + extra + b"\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head, body


def test_files_with_types(served):
    r = httpx.get(served.base_url + "/static/app.css")
    assert r.status_code == 200 and r.text == "body { color: red }"
    assert r.headers["content-type"] == "text/css; charset=utf-8"
    assert r.headers["etag"] and r.headers["last-modified"] and r.headers["accept-ranges"] == "bytes"
    assert httpx.get(served.base_url + "/static/data.json").headers["content-type"] == "application/json"
    assert httpx.get(served.base_url + "/static/caf%C3%A9.txt").text == "accents"
    assert httpx.get(served.base_url + "/api").json() == {"api": True}  # routes live beside mounts


def test_conditional_range_head(served):
    etag = httpx.get(served.base_url + "/static/app.css").headers["etag"]
    assert httpx.get(served.base_url + "/static/app.css", headers={"if-none-match": etag}).status_code == 304
    r = httpx.get(served.base_url + "/plain/big.js", headers={"range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == b"x" * 10
    r = httpx.head(served.base_url + "/static/app.css")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "19"
    assert httpx.post(served.base_url + "/static/app.css").status_code == 405


def test_not_found_and_directories(served):
    r = httpx.get(served.base_url + "/static/nope.txt")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    assert httpx.get(served.base_url + "/static/docs").status_code == 404  # directories need html=True
    assert httpx.get(served.base_url + "/static/").status_code == 404


def test_html_mode(served):
    r = httpx.get(served.base_url + "/site/")
    assert r.status_code == 200 and r.text == "<h1>home</h1>"
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    r = httpx.get(served.base_url + "/site/docs", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/site/docs/"
    assert httpx.get(served.base_url + "/site/docs/").text == "<h1>docs</h1>"
    r = httpx.get(served.base_url + "/site/missing/page")
    assert r.status_code == 404 and r.text == "<h1>nothing here</h1>"
    assert httpx.get(served.base_url + "/site/empty/").status_code == 404


def test_precompressed_variants(served):
    r = httpx.get(served.base_url + "/static/big.js", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert r.content == b"x" * 5000  # httpx decodes it
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    r = httpx.get(served.base_url + "/static/big.js", headers={"accept-encoding": "br, gzip"})
    assert r.headers["content-encoding"] == "br" and r.headers["content-length"] == str(len(b"brotli bytes"))
    r = httpx.get(served.base_url + "/static/big.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in r.headers and r.headers["vary"] == "Accept-Encoding"
    r = httpx.get(served.base_url + "/static/big.js", headers={"accept-encoding": "gzip;q=0, br;q=0"})
    assert "content-encoding" not in r.headers
    r = httpx.get(served.base_url + "/static/only-gz.txt", headers={"accept-encoding": "*"})
    assert r.headers["content-encoding"] == "gzip"
    r = httpx.get(served.base_url + "/plain/big.js", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in r.headers and "vary" not in r.headers


@pytest.mark.parametrize(
    "target",
    [
        b"/static/../secret.txt",
        b"/static/%2e%2e/secret.txt",
        b"/static/%2E%2E%2Fsecret.txt",
        b"/static/docs/../../secret.txt",
        b"/static/..%2fsecret.txt",
        b"/static/..%5csecret.txt",
        b"/static/%5c..%5csecret.txt",
        b"/static/./app.css",
        b"/static/app.css%00.txt",
        b"/static/%c0%ae%c0%ae/secret.txt",
        b"/static/%252e%252e/secret.txt",
        b"/static//etc/passwd",
        b"/static/%2fetc%2fpasswd",
        b"/static/escape",
        b"/static/%zz",
    ],
)
def test_no_way_out(served, target):
    status, _, body = raw_get(served.port, target)
    assert status in (400, 404), target
    assert b"outside the directory" not in body and b"root:" not in body


def test_symlinks(served):
    assert httpx.get(served.base_url + "/static/inside").text == "body { color: red }"  # stays inside
    assert httpx.get(served.base_url + "/follow/escape").text == "outside the directory"  # follow_symlink=True


def test_mount_arguments(tree):
    app = Catzilla(auto_memory_tuning=False)
    with pytest.raises(RuntimeError, match="does not exist"):
        StaticFiles(directory=tree / "missing")
    StaticFiles(directory=tree / "missing", check_dir=False)
    with pytest.raises(ValueError, match="must not end with"):
        app.mount("/assets/", StaticFiles(directory=tree / "site"))
    with pytest.raises(TypeError, match="ASGI app"):  # neither static, a Catzilla app nor callable
        app.mount("/sub", object())


def test_url_for_routes_and_mounts(tree):
    app = Catzilla()
    app.mount("/static", StaticFiles(directory=tree / "site"), name="static")

    @app.get("/users/{user_id}/files/{rest:path}")
    def user_file(user_id: int, rest: str) -> dict[str, str]:
        return {}

    @app.get("/links")
    def links(request: Request) -> dict[str, str]:
        return {
            "css": str(request.url_for("static", path="/app.css")),
            "file": str(request.url_for("user_file", user_id=7, rest="a/b c.txt")),
        }

    assert app.url_path_for("static", path="/app.css") == "/static/app.css"
    assert app.url_path_for("static", path="app.css") == "/static/app.css"
    assert app.url_path_for("user_file", user_id=7, rest="a/b") == "/users/7/files/a/b"
    with pytest.raises(NoMatchFound):
        app.url_path_for("user_file", user_id=7)  # a parameter missing
    with pytest.raises(NoMatchFound):
        app.url_path_for("nope")
    with pytest.raises(ValueError, match="user_id"):
        app.url_path_for("user_file", user_id="a/b", rest="x")
    with serve_in_thread(app) as srv:
        got = httpx.get(srv.base_url + "/links").json()
        assert got == {
            "css": f"http://{HOST}:{srv.port}/static/app.css",
            "file": f"http://{HOST}:{srv.port}/users/7/files/a/b%20c.txt",
        }
        assert httpx.get(got["css"]).text == "body { color: red }"


def static_bytes(app: Catzilla) -> int:
    return app.get_memory_stats()["arenas"]["static"]["allocated_bytes"]


def test_small_hot_files_are_kept_in_memory_and_checked(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "secret.txt").write_text("outside the directory")
    for i in range(8):
        (site / f"f{i}.txt").write_bytes(bytes([65 + i]) * 4000)
    app = Catzilla()
    app.mount("/c", StaticFiles(directory=site, cache_max_bytes=10_000, cache_max_file=5000), name="c")
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as client:
        before = static_bytes(app)
        assert client.get("/c/f0.txt").content == b"A" * 4000  # read from disk, then kept
        held = static_bytes(app) - before
        assert 4000 <= held < 4000 + 512
        for _ in range(3):  # served from memory, the same bytes
            r = client.get("/c/f0.txt")
            assert r.content == b"A" * 4000 and r.headers["content-length"] == "4000"
        assert client.get("/c/f0.txt", headers={"range": "bytes=10-19"}).content == b"A" * 10
        assert client.head("/c/f0.txt").headers["content-length"] == "4000"
        etag = client.get("/c/f0.txt").headers["etag"]
        assert client.get("/c/f0.txt", headers={"if-none-match": etag}).status_code == 304

        # a changed file is read again
        time.sleep(0.01)
        (site / "f0.txt").write_bytes(b"new content")
        r = client.get("/c/f0.txt")
        assert r.content == b"new content" and r.headers["etag"] != etag

        # a name that now leads outside the directory is not served from memory
        assert client.get("/c/f1.txt").status_code == 200
        (site / "f1.txt").unlink()
        os.symlink(tmp_path / "secret.txt", site / "f1.txt")
        r = client.get("/c/f1.txt")
        assert r.status_code == 404 and b"outside" not in r.content

        # the bound: 8 files of 4,000 bytes into 10,000
        for i in range(8):
            assert client.get(f"/c/f{i}.txt").status_code in (200, 404)
            assert static_bytes(app) - before <= 10_000 + 3 * 512


def test_the_cache_can_be_turned_off(tmp_path):
    (tmp_path / "a.txt").write_text("a" * 1000)
    app = Catzilla()
    app.mount("/n", StaticFiles(directory=tmp_path, cache_max_bytes=0))
    with serve_in_thread(app) as srv:
        before = static_bytes(app)
        for _ in range(3):
            assert httpx.get(srv.base_url + "/n/a.txt").text == "a" * 1000
        assert static_bytes(app) == before
    with pytest.raises(ValueError, match="cache_max_bytes"):
        StaticFiles(directory=tmp_path, cache_max_bytes=-1)
