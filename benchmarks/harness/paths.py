"""Where things are."""

from __future__ import annotations

import os
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]  # benchmarks/
REPO = BENCH.parent
APPS = BENCH / "apps"
PEERS = BENCH / "peers"  # pinned requirements, one file per venv
VENVS = BENCH / ".venvs"  # git-ignored
RESULTS = BENCH / "results"


def our_python() -> str:
    """The interpreter that runs this repo's catzilla: the repo's .venv (built by `make setup`)."""
    return os.environ.get("CATZILLA_BENCH_PYTHON") or str(REPO / ".venv" / "bin" / "python")
