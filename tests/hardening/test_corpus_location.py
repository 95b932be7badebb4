"""The desync corpus lives outside the repo: without it those tests skip, saying where they looked."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_python

REPO = Path(__file__).resolve().parents[2]
RUN = f"""
import sys, pytest
sys.path.insert(0, {str(REPO)!r})
sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", {str(REPO / "tests/hardening/test_desync_corpus.py")!r}]))
"""


def test_absent_corpus_skips_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "no-corpus-here"
    out = run_python(RUN, env={"CATZILLA_DESYNC_CORPUS": str(empty)})
    assert out.returncode == 5, out.stdout + out.stderr  # pytest's "no tests ran": the module skipped, nothing failed
    assert "1 skipped" in out.stdout
    assert f"http-desync-guardian corpus not found at {empty}" in out.stdout
    assert "CATZILLA_DESYNC_CORPUS" in out.stdout
