"""The TechEmpower-style suite against a real PostgreSQL: python -m benchmarks.tfb

    python -m benchmarks.tfb                                   # make bench-tfb: every server, every test
    python -m benchmarks.tfb --servers catzilla,fastapi --tests db,fortunes --duration 3 --runs 1

PostgreSQL (Debian's `postgresql`, installed with apt when missing and we are
root) is initdb'd into a temporary directory, served on a Unix socket, pinned
to the client's CPU, seeded with TFB's World and Fortune tables, and removed
at the end. For each test every server is started fresh (pinned to CPU 0, in
its own venv), its answer checked as TFB's verifier would, then measured with
wrk (pinned to CPU 1) in rounds that alternate the servers, so that each
server's runs are spread over the same minutes of the machine's life. Results:
benchmarks/results/tfb/README.md and results.json. Without PostgreSQL the
suite says so and exits 0 (nothing measured, nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import pg, procs, sysinfo
from .harness.paths import RESULTS, our_python
from .harness.servers import Server, ServerError, ServerSpec, start_server
from .harness.tfb import BY_NAME, CATZILLA_SITE, TESTS, Test, catzilla_requirements, check, pipeline_script, servers
from .harness.venvs import VenvError, base_python, dist_version, ensure_venv
from .harness.wrk import WrkResult, run_wrk, wrk_available

OUT = RESULTS / "tfb"
GOAL_RATIO = 1.5  # issue 18: every TFB test type >= 1.5x the fastest peer, p99 below every peer's


def log(msg: str) -> None:
    print(msg, flush=True)


def ensure_catzilla_site(log=log) -> None:
    """pip install --target the drivers our Catzilla's TFB app imports (for our_python())."""
    req = catzilla_requirements()
    digest = hashlib.sha256(req.read_bytes() + our_python().encode()).hexdigest()
    stamp = CATZILLA_SITE / ".bench-installed"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    log(f"[venv] installing {req.name} into {CATZILLA_SITE} ...")
    shutil.rmtree(CATZILLA_SITE, ignore_errors=True)
    cmd = [our_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(CATZILLA_SITE)]
    p = subprocess.run([*cmd, "-r", str(req)], capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise VenvError("tfb-catzilla", "pip install --target failed", (p.stdout + p.stderr)[-1500:])
    stamp.write_text(digest + "\n")


def prepare(specs: list[ServerSpec]) -> dict:
    out: dict = {}
    for spec in specs:
        info: dict = {"label": spec.label, "role": spec.role, "notes": spec.notes, "status": "ok"}
        try:
            if spec.role == "ours":
                ensure_catzilla_site()
                python = our_python()
                env = dict(os.environ, **spec.env)
                p = subprocess.run(
                    [python, "-c", "import catzilla, asyncpg, psycopg, jinja2; print(catzilla.__file__)"],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=60,
                )
                if p.returncode != 0:
                    raise VenvError(spec.name, "catzilla or its TFB drivers do not import", p.stderr[-800:])
                info["catzilla_from"] = p.stdout.strip()
            else:
                python = str(ensure_venv(spec.venv or spec.name, log=log))
            info["python"] = python
            info["versions"] = {d: _version(python, d, spec.env) for d in spec.dists}
        except VenvError as e:
            info.update(status="install-failed", error=str(e), excerpt=e.excerpt)
            log(f"[{spec.name}] {e}")
        out[spec.name] = info
    return out


def _version(python: str, dist: str, env: dict[str, str]) -> str | None:
    if not env.get("PYTHONPATH"):
        return dist_version(python, dist)
    p = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        timeout=60,
    )
    return p.stdout.strip() or None


def _stats(values: list[float | None]) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def _cpu(server: Server) -> float:
    total = 0.0
    for pid in procs.process_tree(server.pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += procs.cpu_seconds(pid)
    return total


def run_test(test: Test, specs: list[ServerSpec], ready: dict, db: pg.Postgres, args, tmp: Path) -> dict:
    """Every server fresh, checked, then `runs` rounds alternating the servers."""
    entries: dict[str, dict] = {}
    running: dict[str, Server] = {}
    conns = test.connections or args.connections
    script = pipeline_script(tmp, test.pipeline) if test.pipeline > 1 else None
    env = {**db.env(), "TFB_POOL_SIZE": str(args.pool_size)}
    try:
        for spec in specs:
            e: dict = {"server": spec.name, "test": test.name, "status": "ok"}
            entries[spec.name] = e
            if ready[spec.name]["status"] != "ok":
                e.update(status=ready[spec.name]["status"], error=ready[spec.name].get("error", ""))
                continue
            if test.name in spec.skip:
                e.update(status="not-applicable", error=spec.skip[test.name])
                continue
            try:
                srv = start_server(
                    spec,
                    python=ready[spec.name]["python"],
                    cpu=args.server_cpu,
                    env=env,
                    ready_path="/json",
                    ready_timeout=60,
                )
            except ServerError as err:
                e.update(status="start-failed", error=str(err), excerpt=err.excerpt)
                continue
            e["server_command"] = srv.command
            try:
                e["check"] = check(srv, test, db)
            except Exception as err:
                e["check"] = {"ok": False, "problem": f"{type(err).__name__}: {err}"}
            if not e["check"]["ok"]:
                e.update(status="wrong-answer", error=e["check"]["problem"], excerpt=srv.log_tail(800))
                srv.__exit__(None, None, None)
                continue
            running[spec.name] = srv
            e["runs"], e["cpu_us_per_request"] = [], []
        kw = dict(connections=conns, threads=args.threads, script=script, cpu=args.client_cpu, timeout_s=8)
        for name, srv in running.items():
            warm = run_wrk(srv.url(test.path), duration=args.warmup, **kw)
            entries[name]["warmup"] = {"valid": warm.valid, "rps": warm.rps, "problems": warm.problems()}
        for rnd in range(args.runs):
            for name, srv in running.items():
                if not srv.alive():
                    continue
                cpu0 = _cpu(srv)
                r: WrkResult = run_wrk(srv.url(test.path), duration=args.duration, **kw)
                cpu1 = _cpu(srv)
                for attr in ("p50_ms", "p99_ms"):
                    # wrk prints 0.00us for a percentile its histogram does not reach (see _p99)
                    if getattr(r, attr) == 0.0:
                        setattr(r, attr, None)
                entries[name]["runs"].append(r.to_dict())
                entries[name]["cpu_us_per_request"].append((cpu1 - cpu0) / r.requests * 1e6 if r.requests else None)
                log(
                    f"  {test.name:<11} round {rnd + 1}/{args.runs} {name:<14} {r.rps:>10,.0f} req/s  "
                    f"p99 {r.p99_ms if r.p99_ms is not None else float('nan'):>8.2f} ms"
                    + ("" if r.valid else f"  INVALID: {r.problems()}")
                )
        for name, srv in running.items():
            e = entries[name]
            e["wrk_command"] = e["runs"][0]["command"] if e["runs"] else ""
            if not srv.alive():
                e.update(status="crashed", error=f"exited {srv.proc.returncode} under load", excerpt=srv.log_tail(800))
            valid = [r for r in e["runs"] if r["valid"]]
            e["valid_runs"], e["invalid_runs"] = len(valid), len(e["runs"]) - len(valid)
            if e["runs"] and not valid and e["status"] == "ok":
                e.update(
                    status="invalid",
                    error="; ".join(sorted({WrkResult(**_wrk_fields(r)).problems() for r in e["runs"]})),
                )
            e["rps"] = _stats([r["rps"] for r in valid])
            e["p50_ms"] = _stats([r["p50_ms"] for r in valid])
            e["p99_ms"] = _stats([r["p99_ms"] for r in valid])
            e["cpu_us"] = _stats([c for c, r in zip(e["cpu_us_per_request"], e["runs"], strict=True) if r["valid"]])
    finally:
        for srv in running.values():
            srv.__exit__(None, None, None)
    return entries


def _wrk_fields(d: dict) -> dict:
    keys = WrkResult.__dataclass_fields__
    return {k: v for k, v in d.items() if k in keys}


# ---- the report ----------------------------------------------------------------------


def _med(e: dict | None, key: str) -> float | None:
    if not e or e.get("status") != "ok" or not e.get(key):
        return None
    return e[key]["median"]


def _p99(test: str, e: dict | None) -> float | None:
    """The p99 the goals use: none for pipelined tests. wrk records one latency per batch of 16
    there, then "corrects" for coordinated omission with an interval computed per response (16x
    too short), adding samples below the histogram's minimum: its percentiles come out distorted
    or 0 (90% and 99% were 0 for several servers)."""
    return None if BY_NAME[test].pipeline > 1 else _med(e, "p99_ms")


def goals(results: dict) -> list[dict]:
    """Per test: Catzilla's better variant against the fastest peer, and its p99 against every peer's."""
    out = []
    roles = {n: s["role"] for n, s in results["servers"].items()}
    for t in results["tests"]:
        row = results["results"][t]
        ours = [(n, _med(row.get(n), "rps"), _p99(t, row.get(n))) for n in row if roles[n] == "ours"]
        ours = [o for o in ours if o[1] is not None]
        peers = [(n, _med(row.get(n), "rps"), _p99(t, row.get(n))) for n in row if roles[n] == "peer"]
        measured = [p for p in peers if p[1] is not None]
        missing = [n for n, rps, _ in peers if rps is None]
        g: dict = {"test": t, "missing_peers": missing}
        if not ours or not measured:
            g.update(throughput_met=None, p99_met=None, why="Catzilla or every peer has no measurement")
            out.append(g)
            continue
        best = max(ours, key=lambda o: o[1])
        fastest = max(measured, key=lambda p: p[1])
        with_p99 = [p for p in measured if p[2] is not None]
        lowest_p99 = min(with_p99, key=lambda p: p[2]) if with_p99 else (None, None, None)
        g.update(
            ours=best[0],
            ours_rps=best[1],
            ours_p99=best[2],
            fastest_peer=fastest[0],
            fastest_rps=fastest[1],
            ratio=best[1] / fastest[1],
            lowest_p99_peer=lowest_p99[0],
            lowest_p99=lowest_p99[2],
        )
        # our p99 goal is for the same Catzilla entry that the throughput goal names
        # CPU time per request does not depend on how the busy CPUs were shared: the steadier evidence
        cpu = {n: _med(row.get(n), "cpu_us") for n, _, _ in measured}
        cpu = {n: v for n, v in cpu.items() if v is not None}
        g["ours_cpu_us"] = _med(row.get(best[0]), "cpu_us")
        if cpu:
            g["lowest_cpu_peer"] = min(cpu, key=lambda n: cpu[n])
            g["lowest_cpu_us"] = cpu[g["lowest_cpu_peer"]]
        g["throughput_met"] = g["ratio"] >= GOAL_RATIO
        g["p99_met"] = None if lowest_p99[2] is None or best[2] is None else best[2] < lowest_p99[2]
        out.append(g)
    return out


def _n(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("**met**" if met else "not met")


def markdown(results: dict) -> str:
    c = results["conditions"]
    names = [n for n in results["servers"]]
    labels = {n: results["servers"][n]["label"] for n in names}
    tests = results["tests"]
    header = ["| test | " + " | ".join(labels[n] for n in names) + " |", "|---|" + "---:|" * len(names)]
    lines = [
        "# TechEmpower-style suite (PostgreSQL)",
        "",
        f"Run {results['date']} on commit `{results['repo']['commit'][:12]}`"
        + (" (work tree dirty)" if results["repo"]["dirty"] else "")
        + f". Reproduce: `{c['command']}` (`make bench-tfb`).",
        "",
        "## Conditions",
        "",
        f"- Machine: {c['machine']['nproc']} CPUs ({c['machine']['cpu_model']}), {c['machine']['ram_gib']} GiB, "
        f"{c['machine']['os']}, load average at start {' '.join(c['machine']['loadavg_at_start'])}"
        + (f", at the end {' '.join(c['loadavg_at_end'])}" if c.get("loadavg_at_end") else "")
        + " "
        "(other work was running on this machine: absolute numbers are low and noisy; compare the columns).",
        f"- Each server alone on CPU {c['server_cpu']} (taskset); wrk ({c['wrk']}) on CPU {c['client_cpu']}, "
        f"`-t{c['threads']}`, `--latency`; PostgreSQL on CPU {c['pg_cpu']} beside wrk. A database test therefore "
        "shares the client's CPU with the database: on TFB's hardware each has its own machine.",
        f"- Per test and server: a fresh process, TFB's answer check, a {c['warmup']} s warm-up, then "
        f"{c['runs']} runs of {c['duration']} s in rounds that alternate the servers; medians of the runs "
        "(p99: the median of each run's p99). A run with socket errors or non-2xx answers is left out.",
        f"- Connections: {c['connections']} (plaintext: 256, pipelined 16 deep with TFB's pipeline.lua). "
        f"Database pool: {c['pool_size']} connections per server (asyncpg pools; Catzilla sync: one psycopg "
        "connection per pool thread).",
        f"- PostgreSQL: {c['postgres']}, Unix socket, fsync off, synchronous_commit off; `world` 10,000 rows "
        "(id, randomnumber 1..10000), `fortune` TFB's 12 rows; made and removed by the harness.",
        "",
        "## Throughput (median requests/s)",
        "",
        *header,
    ]
    for t in tests:
        row = results["results"][t]
        lines.append(f"| {BY_NAME[t].title} | " + " | ".join(_cell(row.get(n), "rps", 0) for n in names) + " |")
    lines += ["", "## p99 latency (ms, median of the runs)", "", *header]
    for t in tests:
        row = results["results"][t]
        cells = ("n/a (pipelined)" if BY_NAME[t].pipeline > 1 else _cell(row.get(n), "p99_ms", 2) for n in names)
        lines.append(f"| {BY_NAME[t].title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Server CPU time per request (µs, median)",
        "",
        "User + system time of the server's processes over a run, divided by its requests: it does not "
        "depend on how the 2 CPUs were shared (the database's own CPU time is not in it).",
        "",
        *header,
    ]
    for t in tests:
        row = results["results"][t]
        lines.append(f"| {BY_NAME[t].title} | " + " | ".join(_cell(row.get(n), "cpu_us", 0) for n in names) + " |")
    lines += [
        "",
        f"## Goals (issue 18: every test type >= {GOAL_RATIO}x the fastest peer; p99 below every peer's)",
        "",
        "Catzilla's better entry (async + asyncpg or sync + psycopg) for each test, against the peers that ran it.",
        "",
        "| test | Catzilla | req/s | fastest peer | req/s | ratio | >= 1.5x | Catzilla p99 | lowest peer p99 | p99 "
        "| CPU µs/req: Catzilla, lowest peer |",
        "|---|---|---:|---|---:|---:|---|---:|---|---|---|",
    ]
    for g in results["goals"]:
        if g.get("ours") is None:
            lines.append(f"| {BY_NAME[g['test']].title} | - | - | - | - | - | n/a | - | - | n/a | - |")
            continue
        lines.append(
            f"| {BY_NAME[g['test']].title} | {labels[g['ours']]} | {_n(g['ours_rps'])} | {labels[g['fastest_peer']]} "
            f"| {_n(g['fastest_rps'])} | {g['ratio']:.2f}x | {_mark(g['throughput_met'])} | {_n(g['ours_p99'], 2)} "
            f"| {_n(g['lowest_p99'], 2)} ({labels.get(g['lowest_p99_peer'], '-')}) | {_mark(g['p99_met'])} "
            f"| {_n(g.get('ours_cpu_us'))}, {_n(g.get('lowest_cpu_us'))} "
            f"({labels.get(g.get('lowest_cpu_peer', ''), '-')}) |"
        )
    if any(BY_NAME[t].pipeline > 1 for t in tests):
        lines.append(
            "\nNo p99 for the pipelined plaintext test: wrk records one latency per batch of 16 there, then "
            "corrects for coordinated omission with an interval computed per response (16 times too short), "
            "adding samples below its histogram's minimum, so its percentiles are distorted or 0 (several "
            "servers' 90% and 99% were 0). Their raw output is in results.json."
        )
    met = [g for g in results["goals"] if g.get("throughput_met") and g.get("p99_met")]
    lines += [
        "",
        f"Both goals met on {len(met)} of {len(results['goals'])} tests. The issue's other goals (the 100 KiB "
        "JSON answer, the 10 KiB JSON echo) are workloads of `make bench`: "
        "[../README.md](../README.md).",
    ]
    problems = [
        (t, n, e)
        for t in tests
        for n, e in results["results"][t].items()
        if e["status"] not in ("ok", "not-applicable")
    ]
    skipped = [(t, n, e) for t in tests for n, e in results["results"][t].items() if e["status"] == "not-applicable"]
    if problems or skipped:
        lines += ["", "## Not measured", ""]
        for t, n, e in problems:
            lines.append(f"- {labels[n]}, {t}: **{e['status']}**: {e.get('error', '')}")
            if e.get("excerpt"):
                excerpt = " / ".join(ln.strip() for ln in e["excerpt"].strip().splitlines()[-3:])
                lines.append(f"  `{excerpt[:300]}`")
        for t, n, e in skipped:
            lines.append(f"- {labels[n]}, {t}: {e.get('error', '')}")
    lines += ["", "## Servers", "", "| server | versions | how it runs |", "|---|---|---|"]
    for n in names:
        s = results["servers"][n]
        versions = ", ".join(f"{k} {v}" for k, v in (s.get("versions") or {}).items())
        lines.append(f"| {labels[n]} | {versions or s.get('error', '')} | {s.get('notes', '')} |")
    lines += [
        "",
        "Apps: `benchmarks/apps/tfb/`; pins: `benchmarks/peers/tfb-*.txt`; every number and wrk output in "
        "`results.json`.",
        "",
    ]
    return "\n".join(lines)


def _cell(e: dict | None, key: str, digits: int) -> str:
    if e is None:
        return "-"
    if e["status"] == "not-applicable":
        return "(same app)"
    if e["status"] != "ok":
        return e["status"]
    v = _med(e, key)
    return _n(v, digits) + (" ⚠" if e.get("invalid_runs") else "")


def main(argv: list[str] | None = None) -> int:
    all_specs = servers()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default=",".join(s.name for s in all_specs))
    ap.add_argument("--tests", default=",".join(t.name for t in TESTS))
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (default 5)")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per server and test (default 3)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server and test (default 2)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections, except plaintext's 256")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--pool-size", type=int, default=16, help="database connections per server")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--pg-cpu", type=int, default=1)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install PostgreSQL when missing")
    ap.add_argument("--report-only", action="store_true", help="rewrite README.md from --out's results.json")
    args = ap.parse_args(argv)
    if args.report_only:
        out = Path(args.out)
        results = json.loads((out / "results.json").read_text())
        results["goals"] = goals(results)
        (out / "README.md").write_text(markdown(results))
        log(f"[tfb] wrote {out / 'README.md'}")
        return 0
    wanted = args.servers.split(",")
    unknown = set(wanted) - {s.name for s in all_specs}
    tests = [BY_NAME[t] for t in args.tests.split(",") if t in BY_NAME]
    if unknown or len(tests) != len(args.tests.split(",")):
        ap.error(f"unknown server(s) {sorted(unknown)} or test(s); tests: {', '.join(BY_NAME)}")
    if not wrk_available():
        log("wrk is not installed (make bench-env installs it)")
        return 2
    try:
        binaries = pg.ensure_binaries(install=not args.no_install, log=log)
    except pg.PostgresUnavailable as e:
        log(f"TFB suite skipped: {e}")
        return 0
    specs = [s for s in all_specs if s.name in wanted]
    ready = prepare(specs)
    command = "python -m benchmarks.tfb " + shlex.join(argv if argv is not None else sys.argv[1:])
    results: dict = {
        "date": sysinfo.now(),
        "repo": sysinfo.repo(),
        "conditions": {
            "machine": sysinfo.machine(),
            "wrk": sysinfo.tools()["wrk"],
            "postgres": binaries.version,
            "base_python": base_python(),
            "command": command.strip(),
            **{k: getattr(args, k) for k in ("duration", "runs", "warmup", "connections", "threads", "pool_size")},
            **{k: getattr(args, k) for k in ("server_cpu", "client_cpu", "pg_cpu")},
        },
        "servers": ready,
        "tests": [t.name for t in tests],
        "results": {},
    }
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tfb-"))
    try:
        # every server's pool open at once, plus Catzilla sync's pool threads (up to 40 connections)
        max_conns = max(200, len(specs) * args.pool_size + 64)
        with pg.postgres(cpu=args.pg_cpu, install=False, max_connections=max_conns, log=log) as db:
            for test in tests:
                log(f"[tfb] {test.name}: {test.title} ({test.path})")
                results["results"][test.name] = run_test(test, specs, ready, db, args, tmp)
                if test.check == "updates":
                    pg.wait_idle(db)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    results["conditions"]["loadavg_at_end"] = sysinfo.machine()["loadavg_at_start"]
    results["goals"] = goals(results)
    write_results(Path(args.out), results, markdown(results), "tfb")
    return 0


def write_results(out: Path, results: dict, readme: str, tag: str) -> None:
    """results.json and README.md into `out` (made if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "README.md").write_text(readme)
    log(f"[{tag}] {results['elapsed_s']:.0f} s; wrote {out / 'README.md'} and results.json")


if __name__ == "__main__":
    sys.exit(main())
