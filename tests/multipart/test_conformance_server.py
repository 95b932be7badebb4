"""The multipart-form-data-conformance suite through a running server, on both
ways a form reaches a handler: read whole before the handler (``await
request.form()``) and spooled as it arrives (a route with file parameters, the
body sent after its head, chunked). Each case must come out as the C parser
alone says (tests/multipart/test_conformance.py holds the reasons where that
differs from the suite): the same parts, or a 400 naming the problem."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catzilla import Catzilla, File, Request, UploadFile
from tests.multipart.test_conformance import SUITE_DIFF, expected_body, load, suite_cases
from tests.server.conftest import RawConn, serve_in_thread


async def parts_of(request: Request) -> list[dict[str, object]]:
    form = await request.form()
    out: list[dict[str, object]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            out.append({"name": name, "filename": value.filename, "type": value.content_type, "sha": sha(data)})
        else:
            out.append({"name": name, "filename": None, "type": None, "sha": sha(value.encode())})
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    app = Catzilla()

    @app.post("/whole")
    async def whole(request: Request) -> list[dict[str, object]]:
        return await parts_of(request)

    @app.post("/spooled", max_body_size=1 << 24)
    async def spooled(request: Request, unused_file: UploadFile | None = File(None)) -> list[dict[str, object]]:
        return await parts_of(request)

    with serve_in_thread(app) as srv:
        yield srv.port


def post(port: int, path: str, content_type: str, body: bytes) -> tuple[int, object]:
    with RawConn(port) as conn:
        if path == "/whole":
            conn.send(
                f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
                + body
            )
        else:  # the head first: the body is spooled as it comes, in 7-byte chunks
            conn.send(
                f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: {content_type}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode("latin-1")
            )
            time.sleep(0.005)
            chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
            conn.send(b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n")
        r = conn.read_response()
        return r.status, r.json()


@pytest.mark.parametrize("path", ["/whole", "/spooled"])
@pytest.mark.parametrize("case", suite_cases(), ids=lambda p: p.name)
def test_suite_case_through_the_server(port: int, path: str, case: Path) -> None:
    spec, content_type, body = load(case)
    expected = spec["expected"]
    valid = expected["valid"] != (case.name in SUITE_DIFF)
    status, got = post(port, path, content_type, body)
    if not valid:
        assert status == 400, got
        assert isinstance(got, dict) and str(got["detail"]).startswith("multipart: ")
        return
    assert status == 200, got
    assert isinstance(got, list) and len(got) == len(expected["parts"])
    for part, exp in zip(got, expected["parts"], strict=True):
        assert part["name"] == exp["name"]
        filename = exp.get("filename_star") or exp.get("filename")
        if filename is not None and part["filename"] is not None:
            assert part["filename"] == filename
        want = expected_body(exp)
        if want is not None:
            assert part["sha"] == sha(want)
        if exp.get("body_sha256"):
            assert part["sha"] == exp["body_sha256"]


def test_the_spooled_route_is_spooled(port: int) -> None:
    """The chunked, head-first sending above does reach the spooling path: a
    file past 1 MiB comes back whole (it went through a temporary file)."""
    data = bytes(range(256)) * 8192  # 2 MiB
    body = b'--b\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\n' + data + b"\r\n--b--\r\n"
    status, got = post(port, "/spooled", "multipart/form-data; boundary=b", body)
    assert status == 200 and got == [{"name": "f", "filename": "x", "type": None, "sha": sha(data)}]
