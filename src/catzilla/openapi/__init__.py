"""OpenAPI 3.1 (``/openapi.json``) and the interactive docs page (``/docs``)."""

from catzilla.openapi.docs import install
from catzilla.openapi.schema import build_openapi

__all__ = ["build_openapi", "install"]
