"""third_party/pins.txt is the one list of third-party sources, and the build
(cmake/Pins.cmake) and scripts/bootstrap read it the same way, with the same
source cache directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "third_party" / "pins.txt"
CMAKE = shutil.which("cmake", path=str(Path(sys.executable).parent)) or shutil.which("cmake")


def rows() -> list[list[str]]:
    return [line.split() for line in PINS.read_text().splitlines() if line[:1].isalpha()]


def test_vendored_files_match_their_pins() -> None:
    vendored = [r for r in rows() if r[2].startswith("third_party/")]
    assert {r[2] for r in vendored} >= {f"third_party/llhttp/{f}" for f in ("llhttp.h", "api.c", "http.c", "llhttp.c", "LICENSE")}
    for name, version, path, sha, where, *_ in vendored:
        assert hashlib.sha256((ROOT / path).read_bytes()).hexdigest() == sha, path
        assert f"release/v{version}" in where, (path, where)


def test_downloaded_sources_are_pinned_by_sha256_and_url() -> None:
    downloaded = {r[0]: r for r in rows() if not r[2].startswith("third_party/")}
    assert set(downloaded) == {"jemalloc", "libuv", "mimalloc", "zlib"}
    for name, version, file, sha, where, *_ in downloaded.values():
        assert len(sha) == 64 and int(sha, 16) >= 0
        assert all(u.startswith("https://") for u in where.split(","))
    # No second copy of a pin elsewhere in the build files.
    for path in ["CMakeLists.txt", "Makefile", "scripts/bootstrap", *map(str, (ROOT / "cmake").rglob("*.cmake"))]:
        text = (ROOT / path).read_text()
        for r in downloaded.values():
            assert r[3] not in text, f"{path} repeats the SHA256 of {r[0]}"


@pytest.mark.parametrize("env", [
    {"CATZILLA_CACHE_DIR": "/tmp/cz-a", "XDG_CACHE_HOME": "/tmp/x"},
    {"CATZILLA_CACHE_DIR": "", "XDG_CACHE_HOME": "/tmp/x"},
    {"HOME": "/tmp/h"},
], ids=["explicit", "xdg", "home"])
def test_bootstrap_and_cmake_agree_on_the_cache_dir(tmp_path: Path, env: dict[str, str]) -> None:
    if CMAKE is None:
        pytest.skip("cmake not found")
    full = {k: v for k, v in os.environ.items() if k not in ("CATZILLA_CACHE_DIR", "XDG_CACHE_HOME")}
    full.update(env)
    script = tmp_path / "dir.cmake"
    script.write_text(f'include("{ROOT}/cmake/Pins.cmake")\ncatzilla_cache_dir(d)\nmessage("${{d}}")\n')
    from_cmake = subprocess.run([CMAKE, "-P", str(script)], env=full, capture_output=True, text=True, check=True)
    from_bootstrap = subprocess.run([str(ROOT / "scripts" / "bootstrap"), "--print-cache-dir"], env=full,
                                    capture_output=True, text=True, check=True)
    assert from_cmake.stderr.strip() == from_bootstrap.stdout.strip() != ""


def test_zlib_licence_is_the_pinned_sources() -> None:
    """third_party/zlib/LICENSE (THIRD_PARTY_NOTICES.md) is the text the pinned
    zlib source carries, when that source is in the cache."""
    (row,) = [r for r in rows() if r[0] == "zlib"]
    cache = subprocess.run([str(ROOT / "scripts" / "bootstrap"), "--print-cache-dir"],
                           capture_output=True, text=True, check=True).stdout.strip()
    archive = Path(cache) / row[2]
    if not archive.exists():
        pytest.skip(f"{archive} not cached (scripts/bootstrap)")
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == row[3]
    with tarfile.open(archive) as tar:
        member = tar.extractfile(f"{row[5]}/LICENSE")
        assert member is not None
        shipped = member.read()
    assert (ROOT / "third_party" / "zlib" / "LICENSE").read_bytes() == shipped
    assert shipped.decode() in (ROOT / "THIRD_PARTY_NOTICES.md").read_text()
