"""Cost of the access log and of metrics on hello world, side by side.

    python -m benchmarks.observability [--rounds 3] [--duration 5] [--out benchmarks/results/observability]

One server process per run (``taskset -c 0``), wrk ``-t1 -c64`` pinned to
CPU 1. The configurations run in turn, ``--rounds`` times, so that each
round's numbers come from the same minute of the machine's life; the
median requests/s of each configuration is compared with the median with
both off (goal: >= 0.9x each). The access log is written to a file (stdout
of the server), as in production. Writes README.md and results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness.procs import cpu_seconds, free_port, port_open
from benchmarks.harness.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "benchmarks" / "apps" / "catzilla_observability.py"
CONFIGS = {
    "off": {"BENCH_ACCESS_LOG": "off", "BENCH_METRICS": "0"},
    "access_log (common)": {"BENCH_ACCESS_LOG": "common", "BENCH_METRICS": "0"},
    "access_log (json)": {"BENCH_ACCESS_LOG": "json", "BENCH_METRICS": "0"},
    "metrics": {"BENCH_ACCESS_LOG": "off", "BENCH_METRICS": "1"},
    "access_log + metrics": {"BENCH_ACCESS_LOG": "common", "BENCH_METRICS": "1"},
}
GOAL = 0.9


def run_one(env_extra: dict[str, str], duration: float, logdir: Path) -> dict:
    port = free_port()
    env = dict(os.environ, BENCH_PORT=str(port), **env_extra)
    log_path = logdir / f"access-{port}.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, str(APP)], env=env, stdout=out, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 20
            while not port_open(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start ({env_extra})")
                time.sleep(0.05)
            run_wrk(f"http://127.0.0.1:{port}/", duration=1)  # warm-up
            cpu0 = cpu_seconds(proc.pid)
            r = run_wrk(f"http://127.0.0.1:{port}/", duration=duration)
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    with open(log_path, "rb") as f:
        lines = sum(1 for _ in f)
    log_path.unlink()
    # The server's CPU time per request (user + system, its log writes included): steadier than
    # req/s on a machine shared with other work, which takes the CPU from the server unevenly.
    cpu_us = cpu * 1e6 / r.requests if r.requests else None
    return {
        "rps": r.rps,
        "cpu_us_per_request": cpu_us,
        "p99_ms": r.p99_ms,
        "valid": r.valid,
        "problems": r.problems(),
        "log_lines": lines,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "observability"))
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for name, env in CONFIGS.items():
                res = run_one(env, args.duration, Path(tmp))
                runs[name].append(res)
                print(
                    f"round {rnd + 1} {name:22s} {res['rps']:10.0f} req/s  "
                    f"{res['cpu_us_per_request']:.2f} us CPU/request  p99 {res['p99_ms']} ms",
                    flush=True,
                )
    base = statistics.median(r["rps"] for r in runs["off"])
    base_cpu = statistics.median(r["cpu_us_per_request"] for r in runs["off"])
    summary = {}
    for name, rs in runs.items():
        med = statistics.median(r["rps"] for r in rs)
        cpu = statistics.median(r["cpu_us_per_request"] for r in rs)
        summary[name] = {
            "median_rps": med,
            "ratio": med / base if base else None,
            "cpu_us_per_request": cpu,
            "capacity_ratio": base_cpu / cpu if cpu else None,
            "p99_ms_median": statistics.median(r["p99_ms"] or 0 for r in rs),
            "all_valid": all(r["valid"] for r in rs),
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.observability", *sys.argv[1:]]),
        "wrk": f"-t1 -c64 -d{args.duration:g}s, pinned to CPU 1; server pinned to CPU 0",
        "rounds": args.rounds,
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=2) + "\n")
    rows = [
        f"| {name} | {s['median_rps']:,.0f} | {s['ratio']:.3f}x | {s['cpu_us_per_request']:.2f} | "
        f"{s['capacity_ratio']:.3f}x | {s['p99_ms_median']:.2f} | {'yes' if s['capacity_ratio'] >= GOAL else 'NO'} |"
        for name, s in summary.items()
    ]
    (out / "README.md").write_text(
        "# Access log and metrics overhead (hello world)\n\n"
        f"{meta['date']}, Python {meta['python']}, {meta['cpus']} CPUs, {meta['rounds']} rounds; "
        f"wrk {meta['wrk']}.\n`{meta['command']}`\n\n"
        "| configuration | median req/s | vs off | server CPU us/request | capacity vs off | p99 ms | >= 0.9x |\n"
        "|---|---:|---:|---:|---:|---:|---|\n"
        + "\n".join(rows)
        + "\n\n*capacity vs off* is the CPU time per request with both off divided by this configuration's:"
        " the throughput ratio a dedicated core would show. Requests/s are given too, but on a machine shared"
        " with other work they vary by more than the effect measured (see results.json, per round)."
        " The access log is written to a file (the server's stdout); every request is logged"
        " (results.json: log_lines).\n"
    )
    print((out / "README.md").read_text())


if __name__ == "__main__":
    main()
