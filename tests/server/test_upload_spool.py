"""Multipart uploads spooled as they arrive: a route with file parameters gets
its body parsed in C while the client sends it, each file kept in memory up to
1 MiB and then in an unnamed temporary file, so an upload of hundreds of MiB
costs the server a few MiB. Real sockets, real clients."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from catzilla import Catzilla, File, Form, UploadFile
from catzilla.testing import TestClient
from tests.server.conftest import HOST, RawConn, serve_in_thread

LIMIT = 1 << 31
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def build() -> Catzilla:
    app = Catzilla()

    @app.post("/upload", max_body_size=LIMIT)
    async def upload(file: UploadFile, note: str = Form("")) -> dict[str, object]:
        h = hashlib.sha256()
        while chunk := await file.read(1 << 20):
            h.update(chunk)
        on_disk = file.file._rolled
        return {"name": file.filename, "size": file.size, "sha256": h.hexdigest(), "note": note, "on_disk": on_disk}

    @app.post("/many", max_body_size=LIMIT)
    def many(files: list[UploadFile] = File(...), tag: str = Form(...)) -> dict[str, object]:
        return {"tag": tag, "files": [(f.filename, f.size, hashlib.sha256(f.file.read()).hexdigest()) for f in files]}

    @app.post("/small")  # the app's 1 MiB limit
    async def small(file: UploadFile) -> dict[str, int | None]:
        return {"size": file.size}

    @app.get("/rss")
    def rss() -> dict[str, int]:
        fds = len(os.listdir("/proc/self/fd"))
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return {"rss_kib": int(line.split()[1]), "fds": fds}
        return {"rss_kib": 0, "fds": fds}

    return app


def multipart(boundary: bytes, parts: list[tuple[str, str | None, Iterator[bytes] | bytes]]) -> Iterator[bytes]:
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        yield b"--" + boundary + b"\r\nContent-Disposition: " + disp.encode() + b"\r\n\r\n"
        if isinstance(data, bytes):
            yield data
        else:
            yield from data
        yield b"\r\n"
    yield b"--" + boundary + b"--\r\n"


def blocks(n: int, size: int = 1 << 20) -> Iterator[bytes]:
    for i in range(n):
        yield bytes([i % 251]) * size


def digest(it: Iterator[bytes]) -> str:
    h = hashlib.sha256()
    for b in it:
        h.update(b)
    return h.hexdigest()


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return tmp_path


def test_a_big_upload_is_spooled_to_disk_not_memory(tmpdir_env: Path) -> None:
    app = build()
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=60) as c:
        assert c.post("/upload", files={"file": ("w", b"warm")}).json()["size"] == 4  # starts the asyncio loop
        before = c.get("/rss").json()
        ctype = {"content-type": "multipart/form-data; boundary=XyZ"}
        body = multipart(b"XyZ", [("note", None, b"hello"), ("file", "big.bin", blocks(256))])
        r = c.post("/upload", content=body, headers=ctype)  # 256 MiB, chunked
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["size"] == 256 << 20 and got["name"] == "big.bin" and got["note"] == "hello"
        assert got["sha256"] == digest(blocks(256))
        assert got["on_disk"]
        after = c.get("/rss").json()
        # the body never sat in the server's memory: a few MiB, not 256 (ASan's
        # quarantine keeps freed blocks resident: RSS says nothing there)
        if not UNDER_ASAN:
            assert after["rss_kib"] - before["rss_kib"] < 64 * 1024, (before, after)
        assert after["fds"] <= before["fds"]  # the temporary file was closed with its UploadFile
        assert list(tmpdir_env.iterdir()) == []  # never a name on disk


def test_files_and_fields_of_a_spooled_form(tmpdir_env: Path) -> None:
    app = build()
    big = os.urandom(3 << 20)
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url, timeout=60) as c:
        ctype = {"content-type": "multipart/form-data; boundary=b0"}
        body = multipart(b"b0", [("files", "a.txt", b"tiny"), ("tag", None, b"t1"), ("files", "b.bin", big)])
        r = c.post("/many", content=iter(list(body)), headers=ctype)
        assert r.json() == {
            "tag": "t1",
            "files": [
                ["a.txt", 4, hashlib.sha256(b"tiny").hexdigest()],
                ["b.bin", len(big), hashlib.sha256(big).hexdigest()],
            ],
        }
        # the same form as httpx builds it (Content-Length, usually one read for the head)
        r = c.post("/many", files=[("files", ("c", big))], data={"tag": "t2"})
        assert r.json()["files"] == [["c", len(big), hashlib.sha256(big).hexdigest()]]
    assert list(tmpdir_env.iterdir()) == []


def test_a_malformed_or_oversized_spooled_body_is_refused(tmpdir_env: Path) -> None:
    app = build()
    with serve_in_thread(app) as srv, RawConn(srv.port) as conn:
        # truncated: no closing boundary
        conn.send(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=q\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        time.sleep(0.05)
        part = b'--q\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n' + b"x" * 2_000_000
        conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(part), part))
        r = conn.read_response()
        assert r.status == 400
        assert r.json() == {"detail": "multipart: body truncated"} or "multipart" in r.json()["detail"]
    with serve_in_thread(app) as srv:
        # over the app's 1 MiB limit, sent chunked: 413 as it passes, then close
        ctype = {"content-type": "multipart/form-data; boundary=b1"}
        body = multipart(b"b1", [("file", "f", blocks(4))])
        r = httpx.post(srv.base_url + "/small", content=body, headers=ctype, timeout=10)
        assert r.status_code == 413
    assert list(tmpdir_env.iterdir()) == []


def test_a_client_that_leaves_mid_upload_leaves_nothing_behind(tmpdir_env: Path) -> None:
    app = build()
    with serve_in_thread(app) as srv:
        assert httpx.post(srv.base_url + "/upload", files={"file": ("w", b"warm")}).json()["size"] == 4
        before = httpx.get(srv.base_url + "/rss").json()["fds"]
        s = socket.create_connection((HOST, srv.port), timeout=5)
        s.sendall(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=z\r\n"
            b"Content-Length: 100000000\r\n\r\n"
            b'--z\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n' + b"y" * (4 << 20)
        )
        time.sleep(0.3)  # past 1 MiB: the part is in a temporary file now
        s.close()
        deadline = time.monotonic() + 5
        while app.get_server_stats()["active_connections"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.get_server_stats()["active_connections"] == 0
        assert httpx.get(srv.base_url + "/rss").json()["fds"] <= before  # its file was closed
    assert list(tmpdir_env.iterdir()) == []


def test_testclient_uploads_hundreds_of_mib(tmpdir_env: Path) -> None:
    app = build()
    data = b"\x00\x01" * (100 << 20)  # 200 MiB
    with TestClient(app) as client:
        before = client.get("/rss").json()["rss_kib"]
        r = client.post("/upload", files={"file": ("z.bin", data)}, data={"note": "tc"})
        assert r.status_code == 200
        assert r.json()["size"] == len(data) and r.json()["sha256"] == hashlib.sha256(data).hexdigest()
        after = client.get("/rss").json()["rss_kib"]
    # the client holds its 200 MiB; the server adds a few MiB to them, not another 200
    if not UNDER_ASAN:
        assert after - before < 64 * 1024, (before, after)
