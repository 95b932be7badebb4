"""Built-in diagnostics: what this build is, and what works at run time."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import catzilla
from catzilla import _core, memory


def _allocator_status(backend: str) -> dict[str, Any]:
    alloc = _core.Allocator(backend=backend)
    block = alloc._test_alloc("general", 4096)
    works = alloc.stats()["allocated"] >= 4096
    block.free()
    return {
        "requested": backend,
        "in_use": alloc.backend,
        "works": works,
        "fallback_reason": alloc.fallback_reason,
    }


def collect() -> dict[str, Any]:
    build = _core.build_info()
    return {
        "catzilla": catzilla.__version__,
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "libc": " ".join(platform.libc_ver()).strip(),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "build": build,
        "environment": {
            name: os.environ.get(name)
            for name in ("CATZILLA_TEST_JEMALLOC_INIT_FAIL", "CATZILLA_TEST_MIMALLOC_INIT_FAIL", "CATZILLA_ALLOCATOR")
        },
        "allocators": {
            "available": memory.available_allocators(),
            **{name: _allocator_status(name) for name in ("jemalloc", "mimalloc", "malloc")},
        },
    }


def render(report: dict[str, Any]) -> str:
    b, p, py = report["build"], report["platform"], report["python"]
    ma = report["allocators"]["malloc"]
    lines = [
        f"Catzilla {report['catzilla']} diagnostics",
        f"  platform:        {p['system']} {p['release']} {p['machine']} ({p['libc'] or 'unknown libc'})",
        f"  python:          {py['implementation']} {py['version']} ({py['executable']})",
        "build",
        f"  jemalloc:        {'compiled in' if b['jemalloc_compiled'] else 'not compiled in'}"
        + (f" ({b['jemalloc_build_status']})" if b["jemalloc_build_status"] else ""),
    ]
    if b["jemalloc_compiled"]:
        lines += [
            f"  version:         {b['jemalloc_version']}",
            f"  symbol prefix:   {b['jemalloc_prefix']}",
            f"  TLS model:       {b['jemalloc_tls_model']}",
            f"  debug:           {b['jemalloc_debug']}",
        ]
    lines += [
        f"  mimalloc:        {'compiled in' if b['mimalloc_compiled'] else 'not compiled in'}"
        + (f", version {b['mimalloc_version']}" if b["mimalloc_compiled"] else "")
        + (f" ({b['mimalloc_build_status']})" if b["mimalloc_build_status"] else ""),
        f"  build type:      {b['build_type']}{' +ASan/UBSan' if b['sanitizers'] else ''}",
        "run time",
        f"  available:       {', '.join(report['allocators']['available'])}",
    ]
    for name in ("jemalloc", "mimalloc"):
        a = report["allocators"][name]
        lines.append(
            f"  {name + ':':<17}{'OK, in use' if a['in_use'] == name and a['works'] else 'NOT usable'}"
            + (f" — {a['fallback_reason']}; falls back to malloc" if a["fallback_reason"] else "")
        )
    lines.append(f"  malloc:          {'OK' if ma['works'] else 'FAILED'}")
    return "\n".join(lines)
