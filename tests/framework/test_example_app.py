"""The FastAPI app ported in examples/inventory.py, end to end over a real socket."""

import importlib.util
import sys
from pathlib import Path

import pytest

from catzilla.testing import TestClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inventory.py"
AUTH = {"X-Token": "secret-token"}


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location("inventory_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["inventory_example"] = module
    spec.loader.exec_module(module)
    yield module
    module.app.close()
    del sys.modules["inventory_example"]


def test_only_the_imports_name_catzilla() -> None:
    code = EXAMPLE.read_text().split('"""', 2)[2]  # after the module docstring
    lines = [line for line in code.splitlines() if "catzilla" in line.lower()]
    assert lines and all(line.startswith(("from catzilla", "import catzilla")) for line in lines), lines


def test_crud_end_to_end(example) -> None:
    app, store = example.app, example.store
    with TestClient(app) as c:
        assert app.state.started is True  # lifespan ran
        assert c.get("/health").json() == {"status": "ok", "items": 0}
        assert c.get("/items/").status_code == 422  # X-Token header missing
        assert c.get("/items/", headers={"X-Token": "wrong"}).json() == {"detail": "Invalid X-Token header"}

        r = c.post("/items/", json={"name": "Hammer", "price": 9.5, "tags": ["tools"]}, headers=AUTH)
        assert r.status_code == 201
        assert r.json() == {"name": "Hammer", "price": 9.5, "tags": ["tools"], "id": 1}
        c.post("/items/", json={"name": "Nails", "price": 0.1, "tags": ["tools", "small"]}, headers=AUTH)
        c.post("/items/", json={"name": "Glue", "price": 3}, headers=AUTH)
        assert store.commits == 3

        assert [i["name"] for i in c.get("/items/", headers=AUTH).json()] == ["Hammer", "Nails", "Glue"]
        assert [i["id"] for i in c.get("/items/?skip=1&limit=1", headers=AUTH).json()] == [2]
        assert [i["name"] for i in c.get("/items/?tag=small", headers=AUTH).json()] == ["Nails"]
        assert [i["name"] for i in c.get("/items/?q=gl", headers=AUTH).json()] == ["Glue"]
        bad = c.get("/items/?limit=0&q=x", headers=AUTH)
        assert bad.status_code == 422
        assert [e["loc"] for e in bad.json()["detail"]] == [["query", "limit"], ["query", "q"]]

        assert c.get("/items/2", headers=AUTH).json()["name"] == "Nails"
        assert c.get("/items/99", headers=AUTH).json() == {"detail": "Item not found"}
        assert c.get("/items/abc", headers=AUTH).json()["detail"][0]["type"] == "int_parsing"

        r = c.patch("/items/2", json={"price": 0.2}, headers=AUTH)
        assert r.json() == {"name": "Nails", "price": 0.2, "tags": ["tools", "small"], "id": 2}
        r = c.post("/items/", json={"name": "", "price": -1}, headers=AUTH)
        assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
            ("string_too_short", ["body", "name"]),
            ("greater_than", ["body", "price"]),
        ]

        r = c.delete("/items/1", headers=AUTH)
        assert r.status_code == 204 and r.content == b""
        rollbacks = store.rollbacks
        assert c.delete("/items/1", headers=AUTH).status_code == 404
        assert store.rollbacks == rollbacks + 1  # the generator dependency saw the error

        store.capacity = 2
        full = c.post("/items/", json={"name": "Saw", "price": 20}, headers=AUTH)
        assert full.status_code == 507 and "at most 2" in full.json()["detail"]

        pre = c.options(
            "/items/",
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-token, content-type",
            },
        )
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://localhost:3000"

        doc = c.get("/openapi.json").json()
        assert doc["info"]["title"] == "Inventory"
        assert set(doc["paths"]) == {"/health", "/items/", "/items/{item_id}"}
        assert doc["paths"]["/items/"]["post"]["responses"]["201"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Item"
        }
        assert c.get("/docs").status_code == 200
    assert app.state.started is False
