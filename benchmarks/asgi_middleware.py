"""Cost of one ASGI middleware on hello world: Catzilla without middleware, with its
own middleware, with a pure ASGI middleware (app.add_middleware), served as an
ASGI app by uvicorn, and FastAPI on uvicorn without and with the same middleware.

    python -m benchmarks.asgi_middleware [--rounds 3] [--duration 5] [--out benchmarks/results/asgi-middleware]

The middleware adds one response header (apps/_asgi_header.py: the same class in
every configuration that has one). One server process per run (``taskset -c 0``),
wrk ``-t1 -c64`` pinned to CPU 1; the configurations run in turn, ``--rounds``
times, so that each round's numbers come from the same minute of the machine's
life. Before the load one request checks the answer (status 200, the hello
document, the header when a middleware is on). FastAPI runs in the harness's
``fastapi`` venv (benchmarks/peers/fastapi.txt, created on first use); the
Catzilla-on-uvicorn row uses that venv's uvicorn with this repo's catzilla on
``PYTHONPATH``. Writes README.md and results.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.harness import sysinfo
from benchmarks.harness.paths import APPS, our_python
from benchmarks.harness.procs import cpu_seconds, free_port, port_open
from benchmarks.harness.servers import uvicorn_argv
from benchmarks.harness.venvs import ensure_venv
from benchmarks.harness.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent
HELLO = b'{"message":"Hello, World!"}'


def catzilla_site() -> str:
    """Where the catzilla package the benchmark measures is found (its directory's parent)."""
    out = subprocess.run(
        [our_python(), "-c", "import catzilla, os; print(os.path.dirname(os.path.dirname(catzilla.__file__)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def uvicorn(python: str, module: str, port: int) -> list[str]:
    return uvicorn_argv(python, port, module)


def configs(fastapi_python: str) -> dict[str, dict]:
    site = catzilla_site()
    ours = our_python()
    script = str(APPS / "catzilla_asgi_mw.py")
    return {
        "Catzilla, no middleware": {"argv": lambda p: [ours, script], "env": {"BENCH_MW": "none"}, "header": False},
        "Catzilla, its own middleware": {
            "argv": lambda p: [ours, script],
            "env": {"BENCH_MW": "native"},
            "header": True,
        },
        "Catzilla, pure ASGI middleware": {
            "argv": lambda p: [ours, script],
            "env": {"BENCH_MW": "asgi"},
            "header": True,
        },
        "Catzilla as an ASGI app on uvicorn, pure ASGI middleware": {
            "argv": lambda p: uvicorn(fastapi_python, "catzilla_asgi_mw", p),
            "env": {"BENCH_MW": "asgi", "PYTHONPATH": site},
            "header": True,
        },
        "FastAPI on uvicorn, no middleware": {
            "argv": lambda p: uvicorn(fastapi_python, "fastapi_asgi_mw", p),
            "env": {"BENCH_MW": "none"},
            "header": False,
        },
        "FastAPI on uvicorn, pure ASGI middleware": {
            "argv": lambda p: uvicorn(fastapi_python, "fastapi_asgi_mw", p),
            "env": {"BENCH_MW": "asgi"},
            "header": True,
        },
    }


def check(port: int, header: bool) -> None:
    """One request before the load: the hello document, and the header when a middleware is on."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    r = conn.getresponse()
    body = r.read()
    conn.close()
    if r.status != 200 or body != HELLO or (r.getheader("x-bench") == "1") != header:
        raise RuntimeError(f"wrong answer: {r.status} {body[:80]!r} x-bench={r.getheader('x-bench')!r}")


def run_one(config: dict, duration: float) -> dict:
    port = free_port()
    env = dict(os.environ, BENCH_PORT=str(port), **config["env"])
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *config["argv"](port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None and proc.stderr else ""
                raise RuntimeError(f"server did not start: {err[-1500:]}")
            time.sleep(0.05)
        check(port, config["header"])
        run_wrk(f"http://127.0.0.1:{port}/", duration=1)  # warm-up
        cpu0 = cpu_seconds(proc.pid)
        r = run_wrk(f"http://127.0.0.1:{port}/", duration=duration)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "rps": r.rps,
        "cpu_us_per_request": cpu * 1e6 / r.requests if r.requests else None,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "valid": r.valid,
        "problems": r.problems(),
        "wrk": r.command,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "asgi-middleware"))
    args = ap.parse_args()
    fastapi_python = str(ensure_venv("fastapi"))
    load_before = os.getloadavg()
    table = configs(fastapi_python)
    runs: dict[str, list[dict]] = {name: [] for name in table}
    for rnd in range(args.rounds):
        for name, config in table.items():
            res = run_one(config, args.duration)
            runs[name].append(res)
            print(
                f"round {rnd + 1} {name:58s} {res['rps']:10.0f} req/s  "
                f"{res['cpu_us_per_request']:.2f} us CPU/request  p99 {res['p99_ms']} ms",
                flush=True,
            )
    base = "Catzilla, no middleware"
    summary: dict[str, dict] = {}
    for name, rs in runs.items():
        ok = [r for r in rs if r["valid"]] or rs
        summary[name] = {
            "median_rps": statistics.median(r["rps"] for r in ok),
            "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in ok),
            "p50_ms": statistics.median(r["p50_ms"] or 0 for r in ok),
            "p99_ms": statistics.median(r["p99_ms"] or 0 for r in ok),
            "all_valid": all(r["valid"] for r in rs),
        }
    for s in summary.values():
        s["vs_catzilla_none"] = s["median_rps"] / summary[base]["median_rps"]
        s["vs_fastapi_asgi"] = s["median_rps"] / summary["FastAPI on uvicorn, pure ASGI middleware"]["median_rps"]
    meta = sysinfo.run_meta(
        "benchmarks.asgi_middleware",
        args.duration,
        args.rounds,
        loadavg_before=load_before,
        loadavg_after=os.getloadavg(),
    )
    rows = [
        f"| {name} | {s['median_rps']:,.0f} | {s['vs_catzilla_none']:.2f}x | {s['vs_fastapi_asgi']:.2f}x | "
        f"{s['cpu_us_per_request']:.1f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {'yes' if s['all_valid'] else 'NO'} |"
        for name, s in summary.items()
    ]
    table = [
        "| configuration | median req/s | vs Catzilla, none | vs FastAPI + ASGI mw | server CPU us/request "
        "| p50 ms | p99 ms | all runs valid |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    sysinfo.write_run(
        Path(args.out),
        meta,
        summary,
        runs,
        "One ASGI middleware on hello world (medians)",
        table,
        "The middleware adds one header (`benchmarks/apps/_asgi_header.py`); Catzilla's own is a "
        "`Middleware.after` hook doing the same. With an ASGI middleware every route of the app is answered "
        "through the chain, off the C fast path: the request goes to a task on the asyncio loop, the chain runs, "
        "its innermost app calls the route's handler and the response comes back as ASGI messages "
        "(docs/framework.md, *ASGI middleware*). Apps without one keep the fast path (the first row).\n\n"
        f"Load average of the machine: {' / '.join(f'{x:.1f}' for x in load_before)} before, "
        f"{' / '.join(f'{x:.1f}' for x in meta['loadavg_after'])} after (1/5/15 min). On a machine shared with "
        "other work the requests/s vary far more than the effect measured (results.json has every round); "
        "the server's CPU time per request is the steadier figure.\n",
    )


if __name__ == "__main__":
    main()
