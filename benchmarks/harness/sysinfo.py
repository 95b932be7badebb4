"""What machine and what software a run used."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

from .paths import REPO
from .servers import nginx_binary
from .wrk import wrk_version


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _run(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=REPO)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines() if ln.startswith("model name")),
        platform.processor() or "unknown",
    )
    mem_kb = next((int(ln.split()[1]) for ln in _read("/proc/meminfo").splitlines() if ln.startswith("MemTotal:")), 0)
    load = _read("/proc/loadavg").split()[:3]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]) or platform.platform(),
        "loadavg_at_start": load,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip() or "n/a",
    }


def tools() -> dict:
    nginx = nginx_binary()
    return {
        "wrk": wrk_version(),
        "nginx": _run([nginx, "-v"]).replace("nginx version: ", "") if nginx else "not installed",
        "taskset": _run(["taskset", "--version"]),
    }


def repo() -> dict:
    return {
        "commit": _run(["git", "rev-parse", "HEAD"]),
        "dirty": bool(_run(["git", "status", "--porcelain", "--untracked-files=no"])),
    }


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_meta(module: str, duration: float, rounds: int, **extra: object) -> dict:
    """What a side-by-side run records about itself: when, where, how (wrk -t1 -c64
    on CPU 1, the server on CPU 0, as these runs do), and `extra`."""
    import sys
    import time

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name, "-m", module, *sys.argv[1:]]),
        "wrk": f"-t1 -c64 -d{duration:g}s, pinned to CPU 1; server pinned to CPU 0",
        "rounds": rounds,
        **extra,
    }


def write_run(out: Path, meta: dict, summary: dict, runs: object, title: str, table: list[str], notes: str) -> None:
    """A side-by-side run's record: results.json ({meta, summary, runs}) and
    README.md (the title, when and how, the command, the table, notes); the
    README is printed too."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=2) + "\n")
    load = meta.get("load_average")
    when = f"{meta['date']}, Python {meta['python']}, {meta['cpus']} CPUs"
    if isinstance(load, (list, tuple)):
        when += f" (load average at the end {load[0]:.1f})"
    (out / "README.md").write_text(
        f"# {title}\n\n{when}, {meta['rounds']} rounds; wrk {meta['wrk']}.\n`{meta['command']}`\n\n"
        + "\n".join(table)
        + "\n\n"
        + notes
    )
    print((out / "README.md").read_text())
