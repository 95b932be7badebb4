"""Versions of the optional libraries, as FastAPI's ``_compat`` names them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    PYDANTIC_VERSION = version("pydantic")
except PackageNotFoundError:
    PYDANTIC_VERSION = "0.0"
PYDANTIC_VERSION_MINOR_TUPLE = tuple(int(x) for x in PYDANTIC_VERSION.split(".")[:2])
PYDANTIC_V2 = PYDANTIC_VERSION_MINOR_TUPLE[0] == 2
