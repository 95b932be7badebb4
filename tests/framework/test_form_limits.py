"""What a form may hold: FastAPI's ``form_limits`` (app, group, route) and
Starlette's ``request.form(max_files=, max_fields=, max_part_size=)``, with
their defaults (1000 files, 1000 fields, 1 MiB per field): 400 past them, on
urlencoded and multipart bodies, read whole or spooled as they arrive."""

from __future__ import annotations

import math
from typing import Annotated, Any

import pytest

from catzilla import Catzilla, File, Form, Request, RouterGroup, UploadFile
from tests.framework.conftest import client_for

MIB = 1024 * 1024


def submit(client: Any, path: str, fields: dict[str, str], multipart: bool, files: int = 0) -> Any:
    if multipart or files:
        parts: list[tuple[str, Any]] = [(k, (None, v)) for k, v in fields.items()]
        parts += [("upload", (f"f{i}.txt", b"data")) for i in range(files)]
        return client.post(path, files=parts)
    return client.post(path, data=fields)


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
def test_app_and_route_limits_as_fastapi_documents_them(multipart: bool) -> None:
    # The body limit stays the app's own (1 MiB unless set; FastAPI has none):
    # raised here so that the form's limits are what is met.
    app = Catzilla(form_limits={"max_fields": 5}, max_body_size=8 * MIB, auto_memory_tuning=False)

    @app.post("/notes")
    async def create_note(text: Annotated[str, Form()]) -> dict[str, int]:
        return {"size": len(text)}

    @app.post("/documents", form_limits={"max_part_size": 2 * MIB})
    async def create_document(text: Annotated[str, Form()]) -> dict[str, int]:
        return {"size": len(text)}

    try:
        client = client_for(app)
        value = "x" * (MIB + 1)
        assert submit(client, "/notes", {"text": "ok"}, multipart).json() == {"size": 2}
        r = submit(client, "/notes", {"text": value}, multipart)  # the default 1 MiB per field
        assert r.status_code == 400 and "field too large" in r.json()["detail"]
        assert submit(client, "/documents", {"text": value}, multipart).json() == {"size": len(value)}
        fields = {"text": "ok", **{str(i): "v" for i in range(4)}}
        assert submit(client, "/documents", fields, multipart).json() == {"size": 2}  # the app's 5 fields
        r = submit(client, "/documents", {**fields, "extra": "v"}, multipart)
        assert r.status_code == 400 and "too many fields" in r.json()["detail"]
    finally:
        app.close()


def test_files_are_counted_apart_from_fields_on_a_spooled_route(app: Catzilla) -> None:
    # A route with File parameters has its body spooled by the C core as it
    # arrives: the route's limits bound it there, before the handler runs.
    seen: list[int] = []

    limits = {"max_files": 2, "max_fields": 1, "max_part_size": 3 * MIB}

    @app.post("/upload", form_limits=limits, max_body_size=8 * MIB)
    async def upload(note: Annotated[str, Form()], upload: list[UploadFile]) -> dict[str, int]:
        seen.append(len(upload))
        return {"files": len(upload), "note": len(note)}

    client = client_for(app)
    assert submit(client, "/upload", {"note": "hi"}, True, files=2).json() == {"files": 2, "note": 2}
    r = submit(client, "/upload", {"note": "hi"}, True, files=3)
    assert r.status_code == 400 and r.json() == {"detail": "multipart: too many files"}
    r = submit(client, "/upload", {"note": "hi", "other": "x"}, True, files=1)
    assert r.status_code == 400 and r.json() == {"detail": "multipart: too many fields"}
    # 2.5 MiB in one field: over the parser's own 1 MiB, under the route's 3 MiB
    r = submit(client, "/upload", {"note": "n" * (5 * MIB // 2)}, True, files=1)
    assert r.json() == {"files": 1, "note": 5 * MIB // 2}
    r = submit(client, "/upload", {"note": "n" * (3 * MIB + 1)}, True, files=1)
    assert r.status_code == 400 and r.json() == {"detail": "multipart: field too large"}
    assert seen == [2, 1]  # the handler never saw a refused form


def test_a_group_and_its_inclusion_set_limits_key_by_key(app: Catzilla) -> None:
    # A group's own keys win over its inclusion's (FastAPI's include_router), a route's over both.
    group = RouterGroup(prefix="/g", form_limits={"max_fields": 1, "max_files": 5})

    @group.post("/a")
    def a(x: Annotated[str, Form()]) -> str:
        return x

    @group.post("/b", form_limits={"max_fields": 2})
    def b(x: Annotated[str, Form()], y: Annotated[str, Form()]) -> str:
        return x + y

    app.include_routes(group, form_limits={"max_part_size": 4, "max_fields": 9})
    client = client_for(app)
    assert client.post("/g/a", data={"x": "1234"}).json() == "1234"
    assert client.post("/g/a", data={"x": "12345"}).status_code == 400  # the inclusion's 4 bytes
    assert client.post("/g/a", data={"x": "1", "y": "2"}).status_code == 400  # the group's 1 field
    assert client.post("/g/b", data={"x": "1", "y": "2"}).json() == "12"  # the route's 2 fields


def test_request_form_takes_starlettes_limits(app: Catzilla) -> None:
    @app.post("/sync")
    def sync_form(request: Request) -> dict[str, Any]:
        form = request.form(max_fields=2)
        return dict(form)

    @app.post("/async")
    async def async_form(request: Request) -> dict[str, Any]:
        form = await request.form(max_files=0, max_fields=math.inf, max_part_size=5)
        return dict(form)

    client = client_for(app)
    assert client.post("/sync", data={"a": "1", "b": "2"}).json() == {"a": "1", "b": "2"}
    assert client.post("/sync", data={"a": "1", "b": "2", "c": "3"}).status_code == 400
    fields = {str(i): "v" for i in range(1500)}  # past the default 1000, allowed by math.inf
    assert client.post("/async", files=[(k, (None, v)) for k, v in fields.items()]).json() == fields
    r = client.post("/async", files={"f": ("a.txt", b"x")})
    assert r.status_code == 400 and r.json() == {"detail": "multipart: too many files"}
    r = client.post("/async", data={"a": "123456"})
    assert r.status_code == 400 and r.json() == {"detail": "form: field too large"}


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
def test_request_form_in_an_endpoint_with_form_parameters_is_the_form_they_were_read_from(multipart: bool) -> None:
    # Parsed once, within the route's limits (FastAPI's handlers get Starlette's
    # cached form): request.form() must not parse it again with the defaults.
    app = Catzilla(max_body_size=8 * MIB, auto_memory_tuning=False)

    @app.post("/notes", form_limits={"max_fields": 2000, "max_part_size": 2 * MIB})
    async def notes(request: Request, text: Annotated[str, Form()]) -> dict[str, Any]:
        form = await request.form()
        again = await request.form(max_fields=1)
        return {"fields": len(form), "text": len(form["text"]), "same": form is again, "param": len(text)}

    @app.post("/sync", form_limits={"max_fields": 2000})
    def sync_notes(request: Request, text: Annotated[str, Form()]) -> dict[str, Any]:
        return {"fields": len(request.form()), "param": text}

    try:
        client = client_for(app)
        fields = {"text": "x" * (MIB + 10), **{str(i): "v" for i in range(1500)}}
        r = submit(client, "/notes", fields, multipart)
        assert r.status_code == 200, r.text
        assert r.json() == {"fields": 1501, "text": MIB + 10, "same": True, "param": MIB + 10}
        r = submit(client, "/sync", {"text": "hi", **{str(i): "v" for i in range(1200)}}, multipart)
        assert r.status_code == 200, r.text
        assert r.json() == {"fields": 1201, "param": "hi"}
    finally:
        app.close()


@pytest.mark.parametrize(
    "limits, error",
    [
        ({"max_fields": -1}, "max_fields must be an int >= 0"),
        ({"max_files": "3"}, "max_files must be an int >= 0"),
        ({"max_part_size": True}, "max_part_size must be an int >= 0"),
        ({"max_size": 3}, "unknown form limit 'max_size'"),
    ],
)
def test_bad_limits_are_refused_naming_them(limits: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Catzilla(form_limits=limits)
    with pytest.raises(ValueError, match=error):
        RouterGroup(form_limits=limits)
    app = Catzilla(auto_memory_tuning=False)
    try:
        with pytest.raises(ValueError, match=error):
            app.post("/x", form_limits=limits)(lambda: None)
    finally:
        app.close()


def test_a_file_parameter_route_with_default_limits_takes_many_files(app: Catzilla) -> None:
    # Starlette's defaults: 1000 files and 1000 fields, more than the parser's
    # own 1000 parts in all.
    @app.post("/many")
    async def many(upload: Annotated[list[bytes], File()], note: Annotated[list[str], Form()]) -> list[int]:
        return [len(upload), len(note)]

    client = client_for(app)
    parts = [("upload", (f"{i}.txt", b"x")) for i in range(700)] + [("note", (None, "n")) for _ in range(700)]
    assert client.post("/many", files=parts).json() == [700, 700]
