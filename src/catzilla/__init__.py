"""Catzilla: a Python web framework whose hot path is C."""

from catzilla.app import Catzilla

__all__ = ["Catzilla"]
__version__ = "0.3.0"
