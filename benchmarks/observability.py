"""Cost of the access log and of metrics on hello world, side by side.

    python -m benchmarks.observability [--rounds 3] [--duration 5] [--out benchmarks/results/observability]

One server process per run (``taskset -c 0``), wrk ``-t1 -c64`` pinned to
CPU 1. The configurations run in turn, ``--rounds`` times, so that each
round's numbers come from the same minute of the machine's life; the
median requests/s of each configuration is compared with the median with
both off (goal: >= 0.9x each). The access log is written to a file (stdout
of the server), as in production. Writes README.md and results.json.

``--before DIR`` adds the access log configurations and "off" run with the
catzilla package found in DIR (e.g. a ``pip install --target`` of the commit
before a change), interleaved with the others in every round, each compared
with its own "off": a before/after comparison made in the same minutes.

``--mode route-memory`` measures memory per route instead (``route_memory``,
docs/memory.md): hello with it on and off, alone and beside metrics, each
"on" compared with its "off" (goal: >= 0.95x); results go to
benchmarks/results/route-memory by default. Besides the medians, the ratio
of CPU per request is also taken within each round (on against off of the
same round) and its median reported: the pairs ran a minute apart at most.
With ``--before DIR``, "off" is also compared with "off (before)": the
package in DIR with everything off (what the counting costs when unused).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import sysinfo
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
# --mode route-memory: {name: env}, each "on" row's "off" row, and the goal
ROUTE_MEMORY_CONFIGS = {
    "off": {"BENCH_ACCESS_LOG": "off", "BENCH_METRICS": "0", "BENCH_ROUTE_MEMORY": "0"},
    "route_memory": {"BENCH_ACCESS_LOG": "off", "BENCH_METRICS": "0", "BENCH_ROUTE_MEMORY": "1"},
    "metrics": {"BENCH_ACCESS_LOG": "off", "BENCH_METRICS": "1", "BENCH_ROUTE_MEMORY": "0"},
    "metrics + route_memory": {"BENCH_ACCESS_LOG": "off", "BENCH_METRICS": "1", "BENCH_ROUTE_MEMORY": "1"},
}
ROUTE_MEMORY_BASE = {"off": "off", "route_memory": "off", "metrics": "metrics", "metrics + route_memory": "metrics"}
ROUTE_MEMORY_GOAL = 0.95
BEFORE = " (before)"
BEFORE_CONFIGS = ("off", "access_log (common)", "access_log (json)")


def base_of(name: str) -> str:
    """The configuration a row is compared with: "off" of the same build."""
    return "off" + BEFORE if name.endswith(BEFORE) else "off"


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
    ap.add_argument("--out", default=None, help="default: benchmarks/results/observability (route-memory)")
    ap.add_argument("--before", default=None, help="a directory holding the catzilla package to compare with")
    ap.add_argument("--mode", choices=("observability", "route-memory"), default="observability")
    args = ap.parse_args()
    if args.mode == "route-memory":
        route_memory_main(args)
        return
    args.out = args.out or str(ROOT / "benchmarks" / "results" / "observability")
    configs = dict(CONFIGS)
    if args.before:
        before = str(Path(args.before).resolve())
        for name in BEFORE_CONFIGS:
            configs[name + BEFORE] = {**CONFIGS[name], "PYTHONPATH": before}
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for name, env in configs.items():
                res = run_one(env, args.duration, Path(tmp))
                runs[name].append(res)
                print(
                    f"round {rnd + 1} {name:22s} {res['rps']:10.0f} req/s  "
                    f"{res['cpu_us_per_request']:.2f} us CPU/request  p99 {res['p99_ms']} ms",
                    flush=True,
                )
    summary = {}
    for name, rs in runs.items():
        base = statistics.median(r["rps"] for r in runs[base_of(name)])
        base_cpu = statistics.median(r["cpu_us_per_request"] for r in runs[base_of(name)])
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
    meta = sysinfo.run_meta("benchmarks.observability", args.duration, args.rounds, before=args.before)
    rows = [
        f"| {name} | {s['median_rps']:,.0f} | {s['ratio']:.3f}x | {s['cpu_us_per_request']:.2f} | "
        f"{s['capacity_ratio']:.3f}x | {s['p99_ms_median']:.2f} | {'yes' if s['capacity_ratio'] >= GOAL else 'NO'} |"
        for name, s in summary.items()
    ]
    table = [
        "| configuration | median req/s | vs off | server CPU us/request | capacity vs off | p99 ms | >= 0.9x |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    sysinfo.write_run(
        Path(args.out),
        meta,
        summary,
        runs,
        "Access log and metrics overhead (hello world)",
        table,
        "*capacity vs off* is the CPU time per request with both off divided by this configuration's:"
        " the throughput ratio a dedicated core would show. Requests/s are given too, but on a machine shared"
        " with other work they vary by more than the effect measured (see results.json, per round)."
        " The access log is written to a file (the server's stdout); every request is logged"
        " (results.json: log_lines).\n"
        + (
            f"\nRows marked *(before)* ran the catzilla package of `{args.before}` (each compared with its own"
            " *off (before)*), in the same rounds as the others.\n"
            if args.before
            else ""
        ),
    )


def run_rounds(configs: dict[str, dict[str, str]], rounds: int, duration: float) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(rounds):
            for name, env in configs.items():
                res = run_one(env, duration, Path(tmp))
                runs[name].append(res)
                print(
                    f"round {rnd + 1} {name:24s} {res['rps']:10.0f} req/s  "
                    f"{res['cpu_us_per_request']:.2f} us CPU/request  p99 {res['p99_ms']} ms",
                    flush=True,
                )
    return runs


def route_memory_main(args: argparse.Namespace) -> None:
    """Hello with memory per route on and off, side by side (see the module's doc)."""
    configs = dict(ROUTE_MEMORY_CONFIGS)
    bases = dict(ROUTE_MEMORY_BASE)
    if args.before:
        off = {k: v for k, v in configs["off"].items() if k != "BENCH_ROUTE_MEMORY"}  # no such option before
        configs["off" + BEFORE] = {**off, "PYTHONPATH": str(Path(args.before).resolve())}
        bases["off" + BEFORE] = "off" + BEFORE
        bases["off"] = "off" + BEFORE
    runs = run_rounds(configs, args.rounds, args.duration)
    summary = {}
    for name, rs in runs.items():
        base_runs = runs[bases[name]]
        base_cpu = statistics.median(r["cpu_us_per_request"] for r in base_runs)
        cpu = statistics.median(r["cpu_us_per_request"] for r in rs)
        paired = [b["cpu_us_per_request"] / r["cpu_us_per_request"] for r, b in zip(rs, base_runs, strict=True)]
        summary[name] = {
            "compared_with": bases[name],
            "median_rps": statistics.median(r["rps"] for r in rs),
            "cpu_us_per_request": cpu,
            "capacity_ratio": base_cpu / cpu if cpu else None,
            "paired_capacity_ratio_median": statistics.median(paired),
            "paired_capacity_ratios": paired,
            "p99_ms_median": statistics.median(r["p99_ms"] or 0 for r in rs),
            "all_valid": all(r["valid"] for r in rs),
        }
    meta = sysinfo.run_meta(
        "benchmarks.observability", args.duration, args.rounds, load_average=os.getloadavg(), before=args.before
    )
    rows = [
        f"| {name} | {s['compared_with']} | {s['median_rps']:,.0f} | {s['cpu_us_per_request']:.2f} | "
        f"{s['capacity_ratio']:.3f}x | {s['paired_capacity_ratio_median']:.3f}x | {s['p99_ms_median']:.2f} | "
        f"{'yes' if min(s['capacity_ratio'], s['paired_capacity_ratio_median']) >= ROUTE_MEMORY_GOAL else 'NO'} |"
        for name, s in summary.items()
    ]
    table = [
        "| configuration | compared with | median req/s | server CPU us/request | capacity (medians) | "
        "capacity (paired per round, median) | p99 ms | >= 0.95x |",
        "|---|---|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    sysinfo.write_run(
        Path(args.out or ROOT / "benchmarks" / "results" / "route-memory"),
        meta,
        summary,
        runs,
        "Memory per route: overhead on hello world",
        table,
        "*capacity* is the server's CPU time per request of the configuration it is compared with divided"
        " by this one's: the throughput ratio a dedicated core would show (1.000x: no cost). *(medians)* divides"
        " the medians over rounds; *(paired)* divides within each round and takes the median of those ratios."
        " Requests/s vary on a shared machine by more than the effect measured; see results.json per round.\n"
        + (
            f"\n*off (before)* ran the catzilla package of `{args.before}`, in the same rounds as the others.\n"
            if args.before
            else ""
        ),
    )


if __name__ == "__main__":
    main()
