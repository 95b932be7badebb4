"""multipart/form-data bodies: files as UploadFile or bytes, mixed with form
fields, spooled to disk past 1 MiB; malformed bodies answered 400; and the
Starlette-style request.body() / json() / form() in async handlers."""

from __future__ import annotations

import hashlib
import os
from typing import Annotated, Any

from pydantic import BaseModel

from catzilla import Catzilla, File, Form, Request, UploadFile
from tests.framework.conftest import client_for


def test_files_as_bytes_and_as_upload_files(app: Catzilla) -> None:
    @app.post("/files/")
    async def create_file(file: Annotated[bytes, File()]) -> dict[str, int]:
        return {"file_size": len(file)}

    @app.post("/uploadfile/")
    async def create_upload_file(file: UploadFile) -> dict[str, Any]:
        first = await file.read(3)
        await file.seek(0)
        whole = await file.read()
        await file.close()
        return {
            "filename": file.filename,
            "content_type": file.content_type,
            "size": file.size,
            "first": first.decode(),
            "whole": whole.decode(),
            "header": file.headers["content-type"],
        }

    client = client_for(app)
    r = client.post("/files/", files={"file": ("a.txt", b"<file content>")})
    assert r.status_code == 200 and r.json() == {"file_size": 14}
    r = client.post("/uploadfile/", files={"file": ("notes.txt", b"hello world", "text/plain")})
    assert r.json() == {
        "filename": "notes.txt",
        "content_type": "text/plain",
        "size": 11,
        "first": "hel",
        "whole": "hello world",
        "header": "text/plain",
    }


def test_lists_optional_files_and_fields_together(app: Catzilla) -> None:
    @app.post("/many/")
    def many(
        token: Annotated[str, Form()],
        files: Annotated[list[UploadFile], File()],
        blobs: Annotated[list[bytes], File()],
        note: Annotated[UploadFile | None, File()] = None,
    ) -> dict[str, Any]:
        return {
            "token": token,
            "names": [f.filename for f in files],
            "sizes": [len(b) for b in blobs],
            "note": None if note is None else note.filename,
        }

    client = client_for(app)
    r = client.post(
        "/many/",
        data={"token": "abc"},
        files=[("files", ("a", b"1")), ("files", ("b", b"22")), ("blobs", ("c", b"333"))],
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"token": "abc", "names": ["a", "b"], "sizes": [3], "note": None}


def test_missing_or_wrong_parts_answer_422_like_fastapi(app: Catzilla) -> None:
    @app.post("/files/")
    async def create_file(file: Annotated[bytes, File()]) -> dict[str, int]:
        return {"file_size": len(file)}

    @app.post("/upload/")
    async def upload(file: UploadFile) -> dict[str, str | None]:
        return {"filename": file.filename}

    client = client_for(app)
    missing = {"detail": [{"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}]}
    assert client.post("/files/").json() == missing
    assert client.post("/files/", json={"file": "Foo"}).json() == missing  # JSON is not a form
    r = client.post("/upload/", data={"file": "not a file"})  # a field where a file is expected
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["body", "file"],
                "msg": "Value error, Expected UploadFile, received: <class 'str'>",
                "input": "not a file",
                "ctx": {"error": {}},
            }
        ]
    }


def test_a_big_file_is_spooled_to_disk_and_arrives_whole(app: Catzilla) -> None:
    @app.post("/big/", max_body_size=8 * 1024 * 1024)
    async def big(file: UploadFile) -> dict[str, Any]:
        digest = hashlib.sha256(await file.read()).hexdigest()
        return {"size": file.size, "sha256": digest, "on_disk": bool(getattr(file.file, "_rolled", False))}

    data = os.urandom(3 * 1024 * 1024 + 7)
    r = client_for(app).post("/big/", files={"file": ("big.bin", data)})
    assert r.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "on_disk": True}


def test_malformed_multipart_answers_400_naming_the_problem(app: Catzilla) -> None:
    @app.post("/upload/")
    async def upload(file: UploadFile) -> dict[str, str | None]:
        return {"filename": file.filename}

    client = client_for(app)
    body = b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'  # no closing boundary
    r = client.post("/upload/", content=body, headers={"content-type": "multipart/form-data; boundary=xx"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("multipart: ")
    r = client.post("/upload/", content=b"x", headers={"content-type": "multipart/form-data"})  # no boundary
    assert r.status_code == 400


def test_utf8_filename_star(app: Catzilla) -> None:
    @app.post("/upload/")
    async def upload(file: UploadFile) -> dict[str, str | None]:
        return {"filename": file.filename}

    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"; filename*=UTF-8\'\'r%C3%A9sum%C3%A9.txt'
        b"\r\n\r\nx\r\n--b--\r\n"
    )
    r = client_for(app).post("/upload/", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.json() == {"filename": "résumé.txt"}


def test_form_fields_sent_as_multipart(app: Catzilla) -> None:
    @app.post("/login/")
    def login(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> dict[str, str]:
        return {"username": username}

    r = client_for(app).post("/login/", files={"username": (None, b"ana"), "password": (None, b"secret")})
    assert r.status_code == 200 and r.json() == {"username": "ana"}


def test_request_body_json_and_form_in_async_and_sync_handlers(app: Catzilla) -> None:
    @app.post("/async-json")
    async def async_json(request: Request) -> dict[str, Any]:
        return {"body": (await request.body()).decode(), "json": await request.json()}

    @app.post("/sync-json")
    def sync_json(request: Request) -> dict[str, Any]:
        return {"body": request.body.decode(), "json": request.json()}

    @app.post("/async-form")
    async def async_form(request: Request) -> dict[str, Any]:
        form = await request.form()
        upload = form["file"]
        return {"name": form["name"], "file": upload.filename, "data": (await upload.read()).decode()}

    @app.post("/sync-form")
    def sync_form(request: Request) -> dict[str, Any]:
        form = request.form()
        return {"names": form.getlist("name")}

    client = client_for(app)
    assert client.post("/async-json", json={"a": 1}).json() == {"body": '{"a":1}', "json": {"a": 1}}
    assert client.post("/sync-json", json={"a": 1}).json() == {"body": '{"a":1}', "json": {"a": 1}}
    r = client.post("/async-form", data={"name": "n"}, files={"file": ("f.txt", b"data")})
    assert r.json() == {"name": "n", "file": "f.txt", "data": "data"}
    assert client.post("/sync-form", data={"name": ["x", "y"]}).json() == {"names": ["x", "y"]}


def test_openapi_says_multipart_with_binary_fields(app: Catzilla) -> None:
    @app.post("/files/")
    async def create_file(file: Annotated[bytes, File()], note: Annotated[str, Form()]) -> dict[str, int]:
        return {"file_size": len(file)}

    op = app.openapi()["paths"]["/files/"]["post"]
    ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    schema = app.openapi()["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["properties"]["file"] == {
        "type": "string",
        "contentMediaType": "application/octet-stream",  # as FastAPI writes it
        "title": "File",
    }
    assert schema["required"] == ["file", "note"]


def test_body_limits_per_route_and_per_app() -> None:
    app = Catzilla(max_body_size=1000, auto_memory_tuning=False)

    @app.post("/small")
    def small(request: Request) -> dict[str, int]:
        return {"size": len(request.body)}

    @app.post("/large", max_body_size=200_000)
    def large(request: Request) -> dict[str, int]:
        return {"size": len(request.body)}

    client = client_for(app)
    assert client.post("/small", content=b"x" * 1000).json() == {"size": 1000}
    r = client.post("/small", content=b"x" * 1001)
    assert r.status_code == 413 and r.headers["connection"] == "close"
    assert client.post("/large", content=b"x" * 150_000).json() == {"size": 150_000}
    assert client.post("/large", content=b"x" * 200_001).status_code == 413

    def chunks(n: int):  # no Content-Length: chunked, checked as it arrives
        for _ in range(n):
            yield b"y" * 1000

    assert client.post("/large", content=chunks(150)).json() == {"size": 150_000}
    assert client.post("/small", content=chunks(2)).status_code == 413
    assert client.post("/large", content=chunks(201)).status_code == 413
    app.close()


def test_fields_and_files_report_every_missing_one_in_order(app: Catzilla) -> None:
    @app.post("/files/")
    async def create_file(
        file: Annotated[bytes, File()], fileb: Annotated[UploadFile, File()], token: Annotated[str, Form()]
    ) -> dict[str, Any]:
        return {"file_size": len(file), "token": token, "fileb_content_type": fileb.content_type}

    def missing(*names: str) -> dict[str, Any]:
        return {
            "detail": [{"type": "missing", "loc": ["body", n], "msg": "Field required", "input": None} for n in names]
        }

    client = client_for(app)
    assert client.post("/files/").json() == missing("file", "fileb", "token")
    assert client.post("/files/", data={"token": "foo"}).json() == missing("file", "fileb")
    assert client.post("/files/", json={"file": "Foo", "token": "Bar"}).json() == missing("file", "fileb", "token")
    assert client.post("/files/", files={"file": ("t.txt", b"<file content>")}).json() == missing("fileb", "token")
    r = client.post(
        "/files/",
        data={"token": "foo"},
        files={"file": ("t.txt", b"<file content>"), "fileb": ("testb.txt", b"<file b content>", "text/plain")},
    )
    assert r.json() == {"file_size": 14, "token": "foo", "fileb_content_type": "text/plain"}


class Item(BaseModel):
    name: str


def test_a_json_body_needs_a_json_content_type(app: Catzilla) -> None:
    @app.post("/items")
    def create(item: Item) -> Item:
        return item

    client = client_for(app)
    body = b'{"name": "a"}'
    assert client.post("/items", content=body, headers={"content-type": "application/json"}).json() == {"name": "a"}
    assert client.post("/items", content=body, headers={"content-type": "application/ld+json"}).json() == {"name": "a"}
    r = client.post("/items", content=body)  # no Content-Type: not JSON (strict_content_type, FastAPI's default)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "model_attributes_type"
    r = client.post("/items", content=body, headers={"content-type": "text/plain"})  # a CSRF-able simple request
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "model_attributes_type"
