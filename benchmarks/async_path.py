"""What an async handler costs against a sync one: server CPU per request.

    .venv/bin/python -m benchmarks.async_path [--rounds 5] [--duration 4] [--before build/site-before]

Async handlers run as tasks on the asyncio loop, which steps the libuv loop
on the same thread. This measures the price of that path on hello world
(`def` vs `async def`, same body; `/await` suspends once, as an awaited
database call does), as server CPU
time per request (its utime + stime over a wrk window / the requests), which
a machine shared with other work inflates less than requests/s. Server on CPU
0, wrk on CPU 1. With --before, the Catzilla found on that PYTHONPATH (e.g.
`pip install --target build/site-before` of an older commit) runs in the same
rounds, alternating. Writes benchmarks/results/async-path/{results.json,README.md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import procs, wrk

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "async-path"
APP = """
import asyncio
import sys
from catzilla import Catzilla

app = Catzilla(production=True)


@app.get("/sync")
def hello_sync():
    return {"hello": "world"}


@app.get("/async")
async def hello_async():
    return {"hello": "world"}


@app.get("/await")
async def hello_await():
    await asyncio.sleep(0)  # suspends once, as an awaited database call does
    return {"hello": "world"}


app.listen(port=int(sys.argv[1]))
"""


def serve(script: Path, pythonpath: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = procs.free_port()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, str(script), str(port)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not procs.port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the server did not start (PYTHONPATH={pythonpath!r})")
        time.sleep(0.05)
    return proc, port


def window(proc: subprocess.Popen[bytes], port: int, path: str, duration: float) -> dict[str, float]:
    cpu0 = procs.cpu_seconds(proc.pid)
    res = wrk.run_wrk(f"http://127.0.0.1:{port}{path}", duration=duration, connections=64)
    cpu = procs.cpu_seconds(proc.pid) - cpu0
    if not res.valid or not res.requests:
        raise RuntimeError(f"wrk on {path}: {res.raw[-300:]}")
    return {"rps": res.rps, "cpu_us_per_request": cpu * 1e6 / res.requests, "p99_ms": res.p99_ms or 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.async_path", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--before", help="PYTHONPATH of another Catzilla build, measured in the same rounds")
    args = ap.parse_args(argv)
    if not wrk.wrk_available():
        print("wrk is not installed", file=sys.stderr)
        return 2
    builds = {"this build": None} | ({"before": args.before} if args.before else {})
    runs: dict[str, dict[str, list[dict[str, float]]]] = {b: {"/sync": [], "/async": [], "/await": []} for b in builds}
    with tempfile.TemporaryDirectory(prefix="cz-async-path-") as tmp:
        script = Path(tmp) / "app.py"
        script.write_text(APP)
        for rnd in range(args.rounds):
            for build, pythonpath in builds.items():
                proc, port = serve(script, pythonpath)
                try:
                    window(proc, port, "/sync", 1.0)  # warm-up
                    window(proc, port, "/async", 1.0)
                    for path in runs[build]:
                        got = window(proc, port, path, args.duration)
                        runs[build][path].append(got)
                        print(f"round {rnd + 1} {build:10} {path:7} {got}", flush=True)
                finally:
                    proc.terminate()
                    proc.wait(10)
    med = {
        b: {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in paths.items()}
        for b, paths in runs.items()
    }
    out = {"rounds": args.rounds, "duration_s": args.duration, "before": args.before, "runs": runs, "median": med}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Async handlers against sync ones: server CPU per request",
        "",
        f"`python -m benchmarks.async_path {' '.join(argv if argv is not None else sys.argv[1:])}`: hello world "
        f"as `def` and as `async def`, wrk -c64 for {args.duration:g} s, {args.rounds} rounds, medians; server "
        f"on CPU 0, wrk on CPU 1; load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
        "| build | handler | server CPU us/request | req/s | p99 ms |",
        "|---|---|---:|---:|---:|",
    ]
    for b, paths in med.items():
        for p, m in paths.items():
            lines.append(f"| {b} | `{p}` | {m['cpu_us_per_request']:.2f} | {m['rps']:,.0f} | {m['p99_ms']:.2f} |")
    (OUT / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
