"""The real no-jemalloc-source path, end to end: `pip wheel` in a fresh build
directory with an empty source cache and jemalloc's download impossible (its
URL overridden to a file:// path that does not exist) gives a malloc-only
wheel that installs and serves HTTP, with libuv and zlib linked in statically.

The override URL holds a quote and an apostrophe: the fallback reason names
it, and that text must reach build_info() intact (it once broke the compile
command). libuv's pinned archive is copied from the shared cache when it is
there, and zlib's likewise, so the test needs no network; else the build
downloads them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BAD_URL = "file:///nonexistent/catzilla-test/say\"hi'/jemalloc-5.3.0.tar.bz2"


def shared_cache() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "bootstrap"), "--print-cache-dir"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def pinned_archive(name: str) -> str:
    for line in (ROOT / "third_party" / "pins.txt").read_text().splitlines():
        if line.startswith(name + " "):
            return line.split()[2]
    raise AssertionError(f"no {name} pin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    tmp = tmp_path_factory.mktemp("nojemalloc")
    cache = tmp / "cache"
    cache.mkdir()
    for name in ("libuv", "zlib"):
        cached = shared_cache() / pinned_archive(name)
        if cached.exists():
            shutil.copy(cached, cache / cached.name)
    env = dict(os.environ, CATZILLA_CACHE_DIR=str(cache))
    env.pop("CMAKE_ARGS", None)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps",
         "-w", str(tmp / "dist"), "-C", f"build-dir={tmp / 'build'}",
         "-C", f"cmake.define.CATZILLA_JEMALLOC_URL={BAD_URL}", str(ROOT)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert not (cache / "jemalloc-5.3.0.tar.bz2").exists()
    (wheel,) = (tmp / "dist").glob("catzilla-*.whl")
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site, " ".join(log.split()), wheel  # cmake wraps warnings


def test_one_clear_fallback_message(built: tuple[Path, str, Path]) -> None:
    _, log, _ = built
    assert log.count("building WITHOUT jemalloc") == 1
    assert "could not be downloaded" in log
    assert "SYSTEM zlib" not in log


def test_extension_needs_no_libuv_so(built: tuple[Path, str, Path]) -> None:
    site, _, _ = built
    (so,) = (site / "catzilla").glob("_core*.so")
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(
        ["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout)
    assert needed and not [n for n in needed if "libuv" in n or "libz" in n], needed
    # glibc only; ld-linux for __tls_get_addr (mimalloc's thread-locals in a shared object)
    assert set(needed) <= {"libc.so.6", "libm.so.6", "libpthread.so.0", "ld-linux-x86-64.so.2"}, needed


def test_wheel_is_manylinux(built: tuple[Path, str, Path]) -> None:
    """auditwheel finds nothing outside the manylinux policy to graft."""
    pytest.importorskip("auditwheel")
    out = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(built[2])],
                         capture_output=True, text=True, timeout=120)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r'consistent with the following platform tag: "manylinux_2_\d+_\w+"', text), text


def test_malloc_only_wheel_serves(built: tuple[Path, str, Path]) -> None:
    site, _, _ = built
    port = free_port()
    code = (
        "from catzilla import Catzilla, _core\n"
        "info = _core.build_info()\n"
        "assert not info['jemalloc_compiled'], info\n"
        f"assert {BAD_URL!r} in info['jemalloc_build_status'], info\n"
        "assert info['libuv_linkage'] == 'static', info\n"
        "assert info['zlib_linkage'] == 'static', info\n"
        "app = Catzilla(use_jemalloc=False)\n"
        "@app.get('/')\n"
        "def hello():\n"
        "    return {'hello': 'world'}\n"
        f"app.listen(host='127.0.0.1', port={port})\n"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(site), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import httpx

        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert r.status_code == 200 and r.json() == {"hello": "world"}
    finally:
        proc.terminate()
        proc.wait(10)
