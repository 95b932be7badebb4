"""The core works without pydantic and msgspec (both blocked in a fresh interpreter)."""

import textwrap

from tests.conftest import run_python

BLOCKED = textwrap.dedent("""
    import sys
    sys.modules["pydantic"] = None
    sys.modules["msgspec"] = None
    sys.modules["swagger_ui_bundle"] = None
""")


def test_core_without_optional_dependencies() -> None:
    code = BLOCKED + textwrap.dedent("""
        import dataclasses
        from typing import TypedDict
        from catzilla import Catzilla, Query, Depends, Form
        from catzilla.testing import TestClient

        @dataclasses.dataclass
        class Note:
            title: str
            stars: int = 0

        class Movie(TypedDict):
            title: str

        app = Catzilla(auto_memory_tuning=False)

        @app.get("/items/{item_id}")
        def item(item_id: int, q: str = Query("x", max_length=3), ids: list[int] = Query([])):
            return {"item_id": item_id, "q": q, "ids": ids}

        @app.post("/notes")
        def notes(note: Note) -> Note:
            return note

        @app.post("/movies")
        def movies(m: Movie):
            return m

        @app.post("/form")
        def form(name: str = Form()):
            return name

        with TestClient(app) as c:
            assert c.get("/items/3?ids=1&ids=2").json() == {"item_id": 3, "q": "x", "ids": [1, 2]}
            assert c.get("/items/3?q=long").status_code == 422
            assert c.post("/notes", json={"title": "t"}).json() == {"title": "t", "stars": 0}
            r = c.post("/notes", json={"stars": 1})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "title"], r.text
            r = c.post("/notes", content=b"{bad", headers={"content-type": "application/json"})
            assert r.json()["detail"][0]["type"] == "json_invalid"
            assert c.post("/movies", json={"title": "m"}).json() == {"title": "m"}
            assert c.post("/form", data={"name": "n"}).json() == "n"
            doc = c.get("/openapi.json").json()
            assert doc["components"]["schemas"]["Note"]["required"] == ["title"]
            page = c.get("/docs").text
            assert "built-in docs" in page and "//cdn" not in page
        assert "pydantic" not in sys.modules or sys.modules["pydantic"] is None
        assert sys.modules["msgspec"] is None
        print("ok")
    """)
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_import_does_not_load_optional_libraries() -> None:
    out = run_python(
        "import sys, catzilla, catzilla.testing, catzilla.middleware\n"
        "print(sorted(m for m in ('pydantic', 'msgspec', 'swagger_ui_bundle') if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
