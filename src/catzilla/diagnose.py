"""Built-in diagnostics: what this build is, and what works at run time."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import catzilla
from catzilla import _core


def _allocator_status(use_jemalloc: bool) -> dict[str, Any]:
    alloc = _core.Allocator(use_jemalloc=use_jemalloc)
    block = alloc._test_alloc("general", 4096)
    works = alloc.stats()["allocated"] >= 4096
    block.free()
    return {
        "requested": "jemalloc" if use_jemalloc else "malloc",
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
            "CATZILLA_TEST_JEMALLOC_INIT_FAIL": os.environ.get("CATZILLA_TEST_JEMALLOC_INIT_FAIL"),
        },
        "allocators": {
            "available": ["malloc", "jemalloc"] if build["jemalloc_compiled"] else ["malloc"],
            "jemalloc": _allocator_status(True),
            "malloc": _allocator_status(False),
        },
    }


def render(report: dict[str, Any]) -> str:
    b, p, py = report["build"], report["platform"], report["python"]
    je, ma = report["allocators"]["jemalloc"], report["allocators"]["malloc"]
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
        f"  build type:      {b['build_type']}{' +ASan/UBSan' if b['sanitizers'] else ''}",
        "run time",
        f"  available:       {', '.join(report['allocators']['available'])}",
        f"  jemalloc:        {'OK, in use' if je['in_use'] == 'jemalloc' and je['works'] else 'NOT usable'}"
        + (f" — {je['fallback_reason']}; falls back to malloc" if je["fallback_reason"] else ""),
        f"  malloc:          {'OK' if ma['works'] else 'FAILED'}",
    ]
    return "\n".join(lines)
