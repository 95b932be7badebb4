"""Worker scaling: Catzilla's TFB app with 1 and 2 worker processes, against
a real PostgreSQL: python -m benchmarks.workers (make bench-workers)

    python -m benchmarks.workers --tests json,db,fortunes --runs 3 --duration 4

Issue 18's goal: with ``workers=2`` on the 2 CPUs, throughput >= 1.8x one
worker on hello (TFB's JSON test) and on the database tests. Nothing is
pinned: the workers, wrk and PostgreSQL share the machine's 2 CPUs (on TFB's
hardware each has its own machine), so the throughput ratio is a floor set by
the load generator and the database as much as by the server. The server's
CPU time per request (user + system of its process tree over a run, divided
by its requests) does not suffer from that sharing: it is reported beside
every number. The TFB harness (benchmarks/tfb.py) runs it all: a fresh server
per test, TFB's answer check, warm-up, rounds that alternate the two servers.
Results: benchmarks/results/workers/README.md and results.json.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .harness import pg, sysinfo
from .harness.paths import RESULTS
from .harness.servers import ServerSpec
from .harness.tfb import BY_NAME, servers
from .harness.wrk import wrk_available
from .tfb import ensure_catzilla_site, log, prepare, run_test, write_results

OUT = RESULTS / "workers"
GOAL = 1.8  # issue 18: workers=2 >= 1.8x one worker
TESTS = "json,db,queries-1,fortunes,updates-1"


def specs(driver: str) -> list[ServerSpec]:
    base = next(s for s in servers() if s.name == ("catzilla" if driver == "asyncpg" else "catzilla-sync"))
    return [
        replace(
            base,
            name=f"w{n}",
            label=f"{base.label}, workers={n}",
            env={**base.env, "TFB_WORKERS": str(n)},
            skip={},
        )
        for n in (1, 2)
    ]


def markdown(results: dict) -> str:
    c = results["conditions"]
    m = c["machine"]
    lines = [
        "# Worker scaling (Catzilla, 1 and 2 worker processes, PostgreSQL)",
        "",
        f"Run {results['date']} on commit `{results['repo'].get('commit', '?')[:12]}`. Reproduce: "
        f"`{c['command']}` (`make bench-workers`).",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), load average at start "
        f"{' '.join(map(str, m['loadavg_at_start']))}.",
        f"- Catzilla's TFB app ({results['label']}), `TFB_WORKERS` 1 and 2 (`app.listen(workers=N)`); wrk "
        f"`-t1 -c{c['connections']}`; PostgreSQL {c['postgres']} on a Unix socket, {c['pool_size']} pool "
        "connections per worker.",
        "- **Nothing is pinned**: the workers, wrk and PostgreSQL share the 2 CPUs, so a second worker competes "
        "with the load generator and the database for the second CPU. The throughput ratio is therefore a floor; "
        "the server's CPU time per request (user + system of the whole process tree, supervisor included, over "
        "a run, divided by its requests) is not affected by that sharing and shows what a worker costs.",
        f"- Per test: each server fresh, TFB's answer check, {c['warmup']} s warm-up, {c['runs']} runs of "
        f"{c['duration']} s alternating the two; medians.",
        "- **CPU ceiling ratio**: what 2 workers could serve with both CPUs to themselves against 1 worker with "
        "one, from the CPU time per request: 2 x CPU(1 worker) / CPU(2 workers). 2.00x: a second worker costs "
        "nothing per request; below: each request costs more with two (the database pool shared by more "
        "connections, the workers' caches).",
        "",
        f"| test | 1 worker req/s | 2 workers req/s | ratio | >= {GOAL}x | p99 ms (1 / 2) | "
        "CPU µs/request (1 / 2) | CPU ceiling ratio |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for test, row in results["results"].items():
        one, two = row.get("w1", {}), row.get("w2", {})
        r1 = (one.get("rps") or {}).get("median")
        r2 = (two.get("rps") or {}).get("median")
        ratio = r2 / r1 if r1 and r2 else None
        p1 = (one.get("p99_ms") or {}).get("median")
        p2 = (two.get("p99_ms") or {}).get("median")
        c1 = (one.get("cpu_us") or {}).get("median")
        c2 = (two.get("cpu_us") or {}).get("median")

        def n(v: float | None, d: int = 0) -> str:
            return "-" if v is None else f"{v:,.{d}f}"

        met = "-" if ratio is None else ("**met**" if ratio >= GOAL else "not met")
        ceiling = 2 * c1 / c2 if c1 and c2 else None
        lines.append(
            f"| {BY_NAME[test].title} | {n(r1)} | {n(r2)} | {n(ratio, 2)}x | {met} | {n(p1, 2)} / {n(p2, 2)} | "
            f"{n(c1)} / {n(c2)} | {n(ceiling, 2)}x |"
        )
    lines += ["", "Every wrk output and number: `results.json`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", default=TESTS)
    ap.add_argument("--driver", choices=["asyncpg", "psycopg"], default="asyncpg")
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--pool-size", type=int, default=16, help="database connections per worker")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    tests = [BY_NAME[t] for t in args.tests.split(",") if t in BY_NAME]
    if len(tests) != len(args.tests.split(",")) or any(t.pipeline > 1 for t in tests):
        ap.error(f"tests: {', '.join(n for n, t in BY_NAME.items() if t.pipeline == 1)}")
    if not wrk_available():
        log("wrk is not installed (make bench-env installs it)")
        return 2
    try:
        binaries = pg.ensure_binaries(install=True, log=log)
    except pg.PostgresUnavailable as e:
        log(f"worker scaling skipped: {e}")
        return 0
    ensure_catzilla_site()
    chosen = specs(args.driver)
    ready = prepare(chosen)
    # run_test's knobs: nothing pinned, one wrk thread
    args.threads, args.server_cpu, args.client_cpu = 1, None, None
    results: dict = {
        "date": sysinfo.now(),
        "repo": sysinfo.repo(),
        "label": chosen[0].label.rsplit(",", 1)[0],
        "conditions": {
            "machine": sysinfo.machine(),
            "postgres": binaries.version,
            "command": (
                "python -m benchmarks.workers " + shlex.join(argv if argv is not None else sys.argv[1:])
            ).strip(),
            **{k: getattr(args, k) for k in ("duration", "runs", "warmup", "connections", "pool_size", "driver")},
        },
        "results": {},
    }
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    try:
        with pg.postgres(cpu=None, install=False, max_connections=200, log=log) as db:
            for test in tests:
                log(f"[workers] {test.name}: {test.title} ({test.path})")
                results["results"][test.name] = run_test(test, chosen, ready, db, args, tmp)
                if test.check == "updates":
                    pg.wait_idle(db)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    write_results(Path(args.out), results, markdown(results), "workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
