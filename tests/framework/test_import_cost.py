"""Sync-only apps never pay for asyncio: it is loaded by the first async request."""

from tests.conftest import run_python

CODE = """
import sys
from catzilla import Catzilla
app = Catzilla()

@app.get("/")
def hello():
    return {"ok": True}

print("asyncio" in sys.modules, "ssl" in sys.modules)
"""


def test_a_sync_app_does_not_import_asyncio() -> None:
    out = run_python(CODE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
