"""FileResponse over real sockets: headers, conditional requests, ranges,
HEAD, names, missing files, big files to slow readers, files that shrink."""

from __future__ import annotations

import logging
import os
import socket
import time
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from catzilla import Catzilla, FileResponse
from tests.server.conftest import HOST, serve_in_thread

CONTENT = bytes(range(256)) * 40  # 10,240 bytes
BIG = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "data.bin").write_bytes(CONTENT)
    (d / "page.html").write_text("<h1>hi</h1>")
    (d / "big.bin").write_bytes(os.urandom(BIG))
    (d / "shrinks.bin").write_bytes(b"s" * BIG)
    (d / "sub").mkdir()
    return d


@pytest.fixture(scope="module")
def served(files):
    app = Catzilla()

    @app.get("/data")
    def data() -> FileResponse:
        return FileResponse(files / "data.bin")

    @app.post("/data")
    def data_post() -> FileResponse:
        return FileResponse(str(files / "data.bin"))

    @app.get("/page")
    def page() -> FileResponse:
        return FileResponse(files / "page.html")

    @app.get("/download/{name}")
    def download(name: str) -> FileResponse:
        return FileResponse(files / "data.bin", filename=name)

    @app.get("/inline")
    def inline() -> FileResponse:
        return FileResponse(
            files / "data.bin",
            filename="x.bin",
            content_disposition_type="inline",
            headers={"Cache-Control": "max-age=60"},
        )

    @app.get("/created")
    def created() -> FileResponse:
        return FileResponse(files / "data.bin", status_code=201)

    @app.get("/missing")
    def missing() -> FileResponse:
        return FileResponse(files / "nope.txt")

    @app.get("/directory")
    def directory() -> FileResponse:
        return FileResponse(files / "sub")

    @app.get("/big")
    def big() -> FileResponse:
        return FileResponse(files / "big.bin")

    @app.get("/shrinks")
    def shrinks() -> FileResponse:
        return FileResponse(files / "shrinks.bin")

    with serve_in_thread(app) as srv:
        yield srv


def test_whole_file_with_validators(served, files):
    r = httpx.get(served.base_url + "/data")
    assert r.status_code == 200 and r.content == CONTENT
    assert r.headers["content-length"] == str(len(CONTENT))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    mtime = os.stat(files / "data.bin").st_mtime
    assert r.headers["last-modified"] == formatdate(int(mtime), usegmt=True)
    assert httpx.get(served.base_url + "/page").headers["content-type"] == "text/html; charset=utf-8"


def test_conditional_get(served):
    first = httpx.get(served.base_url + "/data")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for headers in ({"if-none-match": etag}, {"if-none-match": f'"x", W/{etag}'}, {"if-modified-since": modified}):
        r = httpx.get(served.base_url + "/data", headers=headers)
        assert r.status_code == 304, headers
        assert r.content == b"" and r.headers["etag"] == etag and "content-type" not in r.headers
    assert httpx.get(served.base_url + "/data", headers={"if-none-match": '"old"'}).status_code == 200
    assert httpx.get(served.base_url + "/data", headers={"if-match": '"old"'}).status_code == 412
    assert httpx.get(served.base_url + "/data", headers={"if-match": etag}).status_code == 200
    early = formatdate(0, usegmt=True)
    assert httpx.get(served.base_url + "/data", headers={"if-unmodified-since": early}).status_code == 412
    # a changing method gets 412 where a GET would get 304
    assert httpx.post(served.base_url + "/data", headers={"if-none-match": etag}).status_code == 412


@pytest.mark.parametrize(
    ("range_", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=10000-", 10000, 10239), ("bytes=-40", 10200, 10239), ("bytes=5-99999", 5, 10239)],
)
def test_single_range(served, range_, start, end):
    r = httpx.get(served.base_url + "/data", headers={"range": range_})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/{len(CONTENT)}"
    assert r.content == CONTENT[start : end + 1]


def test_unsatisfiable_and_multiple_ranges(served):
    r = httpx.get(served.base_url + "/data", headers={"range": "bytes=20000-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(CONTENT)}"
    r = httpx.get(served.base_url + "/data", headers={"range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.content == CONTENT  # several ranges: the whole file
    r = httpx.get(served.base_url + "/data", headers={"range": "lines=1-2"})
    assert r.status_code == 200 and r.content == CONTENT


def test_if_range(served):
    etag = httpx.get(served.base_url + "/data").headers["etag"]
    r = httpx.get(served.base_url + "/data", headers={"range": "bytes=0-3", "if-range": etag})
    assert r.status_code == 206 and r.content == CONTENT[:4]
    r = httpx.get(served.base_url + "/data", headers={"range": "bytes=0-3", "if-range": '"changed"'})
    assert r.status_code == 200 and r.content == CONTENT


def test_head(served):
    r = httpx.head(served.base_url + "/data")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == str(len(CONTENT))


def test_names_and_other_statuses(served):
    r = httpx.get(served.base_url + "/download/report.pdf")
    assert r.headers["content-disposition"] == 'attachment; filename="report.pdf"'
    assert r.headers["content-type"] == "application/pdf"
    r = httpx.get(served.base_url + "/download/résumé.txt")
    assert r.headers["content-disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"
    r = httpx.get(served.base_url + "/inline")
    assert r.headers["content-disposition"] == 'inline; filename="x.bin"'
    assert r.headers["cache-control"] == "max-age=60"
    r = httpx.get(served.base_url + "/created", headers={"range": "bytes=0-1"})
    assert r.status_code == 201 and r.content == CONTENT  # ranges apply to 200s only


def test_missing_file_and_directory(served, caplog):
    with caplog.at_level(logging.ERROR, logger="catzilla.error"):
        r = httpx.get(served.base_url + "/missing")
        assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
        r = httpx.get(served.base_url + "/directory")
        assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
        deadline = time.monotonic() + 5
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    messages = [rec.getMessage() for rec in caplog.records]
    assert any("does not exist" in m for m in messages) and any("cannot be sent" in m for m in messages)
    assert "nope.txt" not in r.text  # paths never reach the client


def test_big_file_to_a_slow_reader(served, files):
    """The socket fills: sendfile pauses and the rest goes out as it is read."""
    s = socket.create_connection((HOST, served.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /data HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    time.sleep(0.3)
    data = b""
    while chunk := s.recv(256 * 1024):
        data += chunk
        time.sleep(0.0005)
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % BIG in head
    assert rest[:BIG] == (files / "big.bin").read_bytes()
    assert rest[BIG:].startswith(b"HTTP/1.1 200 OK")  # the pipelined request after it
    assert rest.endswith(CONTENT)


def server_send_queue(port: int, client_port: int) -> int | None:
    """Bytes the server's end of a loopback connection holds unacknowledged
    (tx_queue of /proc/net/tcp), or None when it is not found."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, _st, queues = line.split()[1:5]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port:
            return int(queues.split(":")[0], 16)
    return None


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads the kernel's socket table (Linux)")
def test_a_reader_that_stops_holds_little_kernel_memory(served, files):
    """A long file keeps little of itself unsent in the kernel
    (TCP_NOTSENT_LOWAT): not a send buffer's worth (up to 4 MiB) per
    reader that stops reading; the rest still goes out once it reads."""
    s = socket.create_connection((HOST, served.port))
    s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    data = s.recv(64 * 1024)
    time.sleep(0.5)
    queued = server_send_queue(served.port, s.getsockname()[1])
    assert queued is not None and queued < 512 * 1024, queued
    s.settimeout(10)
    while chunk := s.recv(1 << 20):
        data += chunk
    s.close()
    assert data.partition(b"\r\n\r\n")[2] == (files / "big.bin").read_bytes()


def test_a_file_that_shrinks_closes_the_connection(served, files):
    path = files / "shrinks.bin"
    s = socket.create_connection((HOST, served.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.sendall(b"GET /shrinks HTTP/1.1\r\nHost: a\r\n\r\n")
    data = s.recv(64 * 1024)
    assert b"Content-Length: %d" % BIG in data
    os.truncate(path, 1024 * 1024)
    s.settimeout(10)
    while chunk := s.recv(1 << 20):
        data += chunk
    s.close()
    body = data.partition(b"\r\n\r\n")[2]
    assert len(body) < BIG  # cut short and closed: never a wrong length
