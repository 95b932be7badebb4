"""What differs between the supported Pythons (3.10-3.13) and must not show.

3.10 reads ``x: T = None`` as ``Optional[T]``, takes ``list[int]`` for a
class, and its ``datetime.fromisoformat`` refuses ``Z`` and fractions other
than 3 or 6 digits. ``make test-pythons`` runs these under each interpreter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest

from catzilla import Catzilla, Request
from catzilla.testing import TestClient

UTC = dt.timezone.utc


@dataclasses.dataclass
class Note:
    title: str


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = Catzilla(auto_memory_tuning=False)

    @app.get("/direct/when")
    def direct_when(when: dt.datetime) -> dict[str, str]:  # taken by the C core
        return {"when": when.isoformat()}

    @app.get("/binder/when")
    def binder_when(request: Request, when: dt.datetime) -> dict[str, str]:  # taken by the compiled binder
        return {"when": when.isoformat()}

    @app.get("/at")
    def at(t: dt.time) -> dict[str, str]:
        return {"t": t.isoformat()}

    @app.get("/none-default")
    # the implicit Optional is the point: 3.10 made it Optional[...], the binder must not care
    def none_default(request: Request = None, n: int = None) -> dict[str, object]:  # type: ignore[assignment]  # noqa: RUF013
        return {"path": request.path, "n": n}

    @app.post("/notes")
    def notes(n: Note) -> list[Note]:
        return [n, n]

    with TestClient(app) as c:
        yield c
    app.close()


@pytest.mark.parametrize("path", ["/direct/when", "/binder/when"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.5Z", dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456+02:00", dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02 03:04:05", dt.datetime(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02", dt.datetime(2024, 1, 2)),
    ],
)
def test_datetimes_parse_alike(client: TestClient, path: str, text: str, expected: dt.datetime) -> None:
    r = client.get(path, params={"when": text})
    assert r.status_code == 200, r.text
    got = dt.datetime.fromisoformat(r.json()["when"])
    assert got == expected and (got.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize("path", ["/direct/when", "/binder/when"])
@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00", "2024-01-02T03:04:05ZZ", ""])
def test_bad_datetimes_are_422_naming_the_parameter(client: TestClient, path: str, text: str) -> None:
    # pydantic's lax mode (FastAPI's) is the reference: its error types
    r = client.get(path, params={"when": text})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["query", "when"]
    assert error["type"] in ("datetime_parsing", "datetime_from_date_parsing", "missing")


def test_time_with_z(client: TestClient) -> None:
    assert client.get("/at", params={"t": "03:04:05.25Z"}).json() == {"t": "03:04:05.250000+00:00"}


def test_none_default_keeps_the_annotation(client: TestClient) -> None:
    assert client.get("/none-default").json() == {"path": "/none-default", "n": None}
    assert client.get("/none-default?n=3").json() == {"path": "/none-default", "n": 3}
    assert client.get("/none-default?n=x").status_code == 422


def test_generic_response_model(client: TestClient) -> None:
    assert client.post("/notes", json={"title": "a"}).json() == [{"title": "a"}, {"title": "a"}]
    schema = client.app.openapi()["paths"]["/notes"]["post"]["responses"]["200"]["content"]["application/json"]
    assert schema["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Note"},
        "title": "Response Notes Notes Post",
    }
