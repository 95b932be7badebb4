"""Run the benchmark suite and write benchmarks/results/.

    python -m benchmarks.run --profile quick     # make bench-quick (< 5 min)
    python -m benchmarks.run --profile full      # make bench
    python -m benchmarks.run --profile quick --servers catzilla,fastapi --workloads hello --no-memory

Each server runs alone in its own virtualenv (benchmarks/.venvs/<name>,
created on demand from benchmarks/peers/<name>.txt), pinned to CPU 0; wrk is
pinned to CPU 1. A server that cannot be installed or started is reported
with its error, never dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time

from .harness import ceilings, framework, memstudy, report, sysinfo
from .harness.bench import PROFILES, measure
from .harness.paths import RESULTS, our_python
from .harness.servers import SERVERS, nginx_binary
from .harness.venvs import VenvError, dist_version, ensure_venv, freeze, ours_python_ok
from .harness.workloads import BY_NAME as WORKLOADS
from .harness.wrk import wrk_available


def log(msg: str) -> None:
    print(msg, flush=True)


def ensure_nginx() -> tuple[bool, str]:
    if nginx_binary():
        return True, ""
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("[nginx] not found: apt-get install -y nginx-light")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        p = subprocess.run(
            ["apt-get", "install", "-y", "-q", "nginx-light"], capture_output=True, text=True, env=env, timeout=900
        )
        if p.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=900)
            p = subprocess.run(
                ["apt-get", "install", "-y", "-q", "nginx-light"], capture_output=True, text=True, env=env, timeout=900
            )
        if nginx_binary():
            return True, ""
        return False, (p.stdout + p.stderr)[-800:]
    return False, "nginx is not installed (apt-get install nginx-light) and this user cannot install it"


def prepare(specs, log=log) -> dict:
    """Install what each server needs; {name: {"status", "error", "excerpt", "python", "versions", "freeze"}}."""
    out: dict = {}
    for spec in specs:
        info: dict = {"label": spec.label, "role": spec.role, "notes": spec.notes, "status": "ok"}
        try:
            if spec.role == "ours":
                ok, detail = ours_python_ok()
                if not ok:
                    raise VenvError(spec.name, "the repo's .venv has no working catzilla", detail)
                python = our_python()
            elif spec.venv is not None:
                python = str(ensure_venv(spec.venv, log=log))
            else:
                ok, detail = ensure_nginx()
                if not ok:
                    raise VenvError(spec.name, "nginx unavailable", detail)
                python = None
            info["python"] = python
            if python:
                info["versions"] = {d: dist_version(python, d) for d in spec.dists}
                info["freeze"] = freeze(python)
            else:
                info["versions"] = {"nginx": sysinfo.tools()["nginx"].replace("nginx/", "")}
        except VenvError as e:
            info.update(status="install-failed", error=str(e), excerpt=e.excerpt)
            log(f"[prepare] {spec.name}: INSTALL FAILED: {e}\n{e.excerpt}")
        out[spec.name] = info
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--servers", help="comma-separated subset (default: all)")
    ap.add_argument("--workloads", help="comma-separated subset (default: the profile's)")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--duration", type=float, help="seconds per run")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up")
    ap.add_argument("--pairs", type=int, default=5, help="hello/typed pairs of the framework target (default 5)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory study")
    ap.add_argument("--memory-only", action="store_true", help="only the memory study")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    prof = dataclasses.replace(PROFILES[args.profile])
    if args.workloads:
        prof.workloads = args.workloads.split(",")
    for key in ("runs", "duration", "warmup"):
        if getattr(args, key) is not None:
            setattr(prof, key, getattr(args, key))
    unknown = [w for w in prof.workloads if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    specs = SERVERS
    if args.servers:
        names = args.servers.split(",")
        specs = [s for s in SERVERS if s.name in names]
        if len(specs) != len(names):
            ap.error(f"unknown servers; known: {', '.join(s.name for s in SERVERS)}")
    if not wrk_available():
        log("wrk is not installed: apt-get install -y wrk")
        return 2
    if (os.cpu_count() or 1) < 2:
        log("warning: fewer than 2 CPUs; server and wrk share a core")

    started = time.monotonic()
    results: dict = {
        "profile": dataclasses.asdict(prof),
        "date": sysinfo.now(),
        "machine": sysinfo.machine(),
        "tools": sysinfo.tools(),
        "repo": sysinfo.repo(),
        "python": sys.version.split()[0],
        "ours_python": our_python(),
        "ours_python_override": bool(os.environ.get("CATZILLA_BENCH_PYTHON")),
        "command": " ".join([os.path.basename(sys.executable), "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
        "workloads": {w: {"title": WORKLOADS[w].title, "request": WORKLOADS[w].describe()} for w in prof.workloads},
        "servers": {},
        "results": [],
        "memory": None,
    }
    log(
        f"== Catzilla benchmarks, profile {prof.name}: {results['machine']['nproc']} CPUs, "
        f"{results['machine']['cpu_model']}, load {' '.join(results['machine']['loadavg_at_start'])}"
    )

    if not args.memory_only:
        results["servers"] = prepare(specs)
        ready = [s for s in specs if results["servers"][s.name]["status"] == "ok"]
        for wname in prof.workloads:
            w = WORKLOADS[wname]
            log(f"[{wname}] {w.describe()}: warm-up {prof.warmup:g}s, {prof.runs} x {prof.duration:g}s")
            for spec in specs:
                if spec not in ready:
                    info = results["servers"][spec.name]
                    results["results"].append(
                        {
                            "server": spec.name,
                            "workload": wname,
                            "status": info["status"],
                            "error": info.get("error"),
                            "excerpt": info.get("excerpt"),
                        }
                    )
                    continue
                e = measure(spec, w, prof, python=results["servers"][spec.name].get("python"), log=log)
                results["results"].append(e)
                if e.get("rps"):
                    log(
                        f"  {spec.name:15s} {e['rps']['median']:>10,.0f} req/s  p50 {e['p50_ms']['median']:.2f} ms"
                        f"  p99 {e['p99_ms']['median']:.2f} ms  RSS {e['rss_before']['rss_kb'] / 1024:.1f}"
                        f" -> {e['rss_after']['rss_kb'] / 1024:.1f} MiB" + (f"  [{e['flag']}]" if e.get("flag") else "")
                    )
                else:
                    log(f"  {spec.name:15s} {e['status'].upper()}: {e.get('error', '')}")
                    if e.get("excerpt"):
                        log("    | " + "\n    | ".join(e["excerpt"].strip().splitlines()[-6:]))

    if "typed" in prof.workloads and any(s.name == "catzilla" for s in specs) and ours_python_ok()[0]:
        log(f"[framework] {args.pairs} alternating pairs of hello / typed on one Catzilla server")
        results["framework"] = framework.run_pairs(prof, args.pairs, python=our_python(), log=log)

    if results["results"] and ours_python_ok()[0]:
        results["json_costs"] = ceilings.json_costs(our_python(), prof.server_cpu)

    if not args.no_memory:
        ok, detail = ours_python_ok()
        if not ok:
            results["memory"] = {"status": "failed", "error": f"this repo's catzilla does not import: {detail}"}
            log(f"[memory] skipped: {results['memory']['error']}")
        else:
            versions = {"catzilla": dist_version(our_python(), "catzilla")}
            only = None
            try:
                uv = ensure_venv("uvicorn", log=log)
                versions.update({d: dist_version(uv, d) for d in ("uvicorn", "uvloop", "httptools")})
            except VenvError as e:
                log(f"[memory] uvicorn venv failed: {e}; the study runs without it")
                only = ["catzilla-jemalloc", "catzilla-malloc"]
            results["memory"] = memstudy.run_study(
                prof, log=log, server_cpu=prof.server_cpu, client_cpu=prof.client_cpu, only=only
            )
            results["memory"]["versions"] = versions

    results["elapsed_s"] = round(time.monotonic() - started, 1)
    paths = report.write_all(results, args.out, log=log)
    log(f"== done in {results['elapsed_s']:.0f}s: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
