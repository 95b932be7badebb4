"""Helpers for the framework tests: every request goes over a real loopback socket (TestClient)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from catzilla import Catzilla
from catzilla.testing import TestClient


@pytest.fixture
def app() -> Iterator[Catzilla]:
    a = Catzilla(auto_memory_tuning=False)
    yield a
    a.close()


def client_for(app: Catzilla, **kwargs: object) -> TestClient:
    return TestClient(app, **kwargs)  # type: ignore[arg-type]
