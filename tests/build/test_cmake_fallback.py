"""Build-time fallback: without a usable jemalloc source the build goes malloc-only.

Configures the project (C core only, no extension) with a jemalloc source
that cannot be used, and checks the single clear message and the result.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CMAKE = shutil.which("cmake", path=str(Path(sys.executable).parent)) or shutil.which("cmake")


def configure(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CMAKE is None:
        pytest.skip("cmake not found")
    return subprocess.run(
        [CMAKE, "-S", str(ROOT), "-B", str(tmp_path / "b"), "-DCATZILLA_BUILD_EXTENSION=OFF", *args],
        capture_output=True, text=True, timeout=300,
    )


def cache_value(tmp_path: Path, name: str) -> str:
    for line in (tmp_path / "b" / "CMakeCache.txt").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split("=", 1)[1]
    return ""


def test_missing_source_gives_a_malloc_only_build(tmp_path: Path) -> None:
    out = configure(tmp_path, f"-DCATZILLA_JEMALLOC_SOURCE={tmp_path}/nowhere.tar.bz2")
    assert out.returncode == 0, out.stderr
    text = " ".join((out.stdout + out.stderr).split())  # cmake wraps warnings
    assert text.count("building WITHOUT jemalloc") == 1
    assert "nowhere.tar.bz2 does not exist" in text
    flags = (tmp_path / "b" / "CMakeFiles").rglob("flags.make")
    assert not any("CZ_HAVE_JEMALLOC" in f.read_text() for f in flags)


def test_corrupt_source_gives_a_malloc_only_build(tmp_path: Path) -> None:
    bad = tmp_path / "jemalloc-5.3.0.tar.bz2"
    bad.write_bytes(b"not a tarball")
    out = configure(tmp_path, f"-DCATZILLA_JEMALLOC_SOURCE={bad}")
    assert out.returncode == 0, out.stderr
    text = " ".join((out.stdout + out.stderr).split())  # cmake wraps warnings
    assert text.count("building WITHOUT jemalloc") == 1
    assert "could not build jemalloc" in text
    assert (tmp_path / "b" / "jemalloc" / "failure.log").exists()


def test_use_jemalloc_off_is_malloc_only_without_warning(tmp_path: Path) -> None:
    out = configure(tmp_path, "-DCATZILLA_USE_JEMALLOC=OFF")
    assert out.returncode == 0, out.stderr
    assert "malloc-only build (CATZILLA_USE_JEMALLOC=OFF)" in out.stdout
    assert "WITHOUT jemalloc" not in out.stdout + out.stderr
    assert cache_value(tmp_path, "CATZILLA_USE_JEMALLOC") == "OFF"


def test_documented_options_exist_with_their_defaults(tmp_path: Path) -> None:
    configure(tmp_path, "-DCATZILLA_USE_JEMALLOC=OFF")
    assert cache_value(tmp_path, "CATZILLA_BUILD_JEMALLOC") == "ON"
    assert cache_value(tmp_path, "CATZILLA_JEMALLOC_DEBUG") == "OFF"
    assert cache_value(tmp_path, "CATZILLA_JEMALLOC_SOURCE") == ""


def test_missing_libuv_source_fails_fast_naming_the_fix(tmp_path: Path) -> None:
    """libuv is required: with no source the configuration stops, before
    jemalloc's long build, and says how to get one."""
    if CMAKE is None:
        pytest.skip("cmake not found")
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    out = subprocess.run(
        [CMAKE, "-S", str(ROOT), "-B", str(tmp_path / "b"), "-DCATZILLA_BUILD_EXTENSION=OFF",
         f"-DCATZILLA_LIBUV_URL=file://{tmp_path}/none/uvloop.tar.gz"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "CATZILLA_CACHE_DIR": str(cache)},
    )
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode != 0
    assert "source is required" in text and "scripts/bootstrap" in text and "CATZILLA_SYSTEM_LIBUV=ON" in text
    assert not (tmp_path / "b" / "jemalloc").exists()


def test_missing_zlib_source_falls_back_to_the_system_zlib(tmp_path: Path) -> None:
    """Without zlib's pinned source the build links the system's zlib, with
    one warning saying why; the C core still builds."""
    out = configure(tmp_path, "-DCATZILLA_USE_JEMALLOC=OFF",
                    f"-DCATZILLA_ZLIB_SOURCE={tmp_path}/nowhere/zlib.tar.bz2")
    assert out.returncode == 0, out.stderr
    text = " ".join((out.stdout + out.stderr).split())  # cmake wraps warnings
    assert text.count("building with the SYSTEM zlib") == 1
    assert "nowhere/zlib.tar.bz2 does not exist" in text
    assert not (tmp_path / "b" / "CMakeFiles" / "cz_zlib.dir").exists()
    assert "libz" in cache_value(tmp_path, "ZLIB_LIBRARY_RELEASE")


def test_zlib_is_compiled_from_the_pinned_source(tmp_path: Path) -> None:
    """By default zlib is compiled here (cz_zlib), hidden and PIC; nothing links libz."""
    out = configure(tmp_path, "-DCATZILLA_USE_JEMALLOC=OFF")
    assert out.returncode == 0, out.stderr
    if "building with the SYSTEM zlib" in out.stdout + out.stderr:
        pytest.skip("zlib's pinned source is not cached and cannot be downloaded here")
    assert "compiled static and PIC, symbols hidden" in out.stdout
    flags = " ".join(f.read_text() for f in (tmp_path / "b" / "CMakeFiles" / "cz_zlib.dir").rglob("flags.make"))
    assert "-fvisibility=hidden" in flags and "-fPIC" in flags
    links = "".join(f.read_text() for f in (tmp_path / "b" / "CMakeFiles").rglob("link.txt"))
    assert "libz.so" not in links and " -lz" not in links
