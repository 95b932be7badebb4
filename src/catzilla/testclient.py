"""``TestClient`` under the module name Starlette and FastAPI give it (``fastapi.testclient``)."""

from catzilla.testing import TestClient

__all__ = ["TestClient"]
