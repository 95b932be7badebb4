"""Memory study v2: what each allocator, at process scope, does for a Catzilla service.

    .venv/bin/python -m benchmarks.memstudy2 [--runs 3] [--seconds 20] [--churn-seconds 600] [--idle 30]

For each allocator (glibc malloc, jemalloc, mimalloc; `Catzilla(allocator=...)`,
product defaults, so process scope for jemalloc and mimalloc) and, for scale,
FastAPI on uvicorn and Granian (RSGI; its wheel links jemalloc for its Rust
side), a fresh server (pinned to CPU 0) runs each workload under wrk (CPU 1),
then idles. Every server answers the same endpoints on the same workloads
(benchmarks/apps/_memwork.py):

    doc    GET  /doc: build and return a ~100 KiB JSON document, -c64
    mixed  POST /mem: bodies and answers log-uniform in 1 KiB..1 MiB, -c256
    churn  GET  /churn: a handler-level LRU of variable-size objects, replaced (fragmentation), -c64
    async  GET  /wait: async handlers, 1,000 in flight across a 50 ms await, -c1000

By default Catzilla switches as `catzilla run` does it: CATZILLA_PROCESS_HEAP,
and the server started through the launcher (catzilla/_python) where the build
has one, so before the interpreter's first block; --at-app switches when the
app is constructed, as a script's `app.listen()` does. Peers run from their
own venvs (benchmarks/peers/<name>.txt). Sampled every 0.5 s: VmRSS of the
server's process tree; every 2 s: /__memstats (Catzilla: the allocator's
figures and the share of the process's heap bytes it governs; every server:
glibc's mallinfo2). Runs are interleaved (run, workload, server) against the
machine's drift. Writes results.json, summary.md (the tables and the spec's
claims) and the plots (PNG, matplotlib from the bench venv when this
interpreter has none) to benchmarks/results/memory-v2/. `make bench-memory`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import memstudy, procs, servers, venvs, wrk

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "benchmarks" / "apps" / "catzilla_memstudy2.py"
OUT = ROOT / "benchmarks" / "results" / "memory-v2"
ALLOCATORS = ("malloc", "jemalloc", "mimalloc")
WORKLOADS = {  # name: (method/path, connections)
    "doc": ("/doc", 64),
    "mixed": ("/mem", 256),
    "churn": ("/churn", 64),
    "async": ("/wait", 1000),
}
PEERS = {
    "fastapi": servers.ServerSpec(
        "fastapi",
        "FastAPI / uvicorn",
        "peer",
        "fastapi",
        servers._uvicorn("fastapi_memstudy2"),
        ("fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools"),
        notes="uvicorn --loop uvloop --http httptools; async def handlers; glibc + pymalloc",
    ),
    "granian": servers.ServerSpec(
        "granian",
        "Granian RSGI",
        "peer",
        "granian",
        servers._granian("rsgi", "granian_memstudy2"),
        ("granian", "uvloop"),
        notes="--workers 1 --http 1 --loop uvloop; supervisor + 1 worker (RSS: both); Rust side jemalloc",
    ),
}
MIB = 1024.0

Row = dict[str, Any]


@dataclass(frozen=True)
class Variant:
    name: str  # catzilla-<allocator> or the peer's name
    allocator: str | None  # Catzilla's; None for a peer

    @property
    def catzilla(self) -> bool:
        return self.allocator is not None


def memstats(port: int) -> dict[str, Any] | None:
    try:
        r = procs.http_request(port, "/__memstats", timeout=10)
        data = json.loads(r.body) if r.status == 200 else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def fragmentation(variant: Variant, stats: dict[str, Any]) -> float | None:
    # glibc (Catzilla on malloc, and every peer's Python side): glibc's whole heap,
    # as the app's own figure under malloc counts only its blocks
    key = "fragmentation_percent" if variant.allocator in ("jemalloc", "mimalloc") else "process_fragmentation_percent"
    v = stats.get(key)
    return float(v) if isinstance(v, (int, float)) else None


class Sampler(threading.Thread):
    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.rss: list[tuple[float, float, float]] = []  # (t, tree MiB, largest process MiB)
        self.stats: list[tuple[float, dict[str, Any]]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        next_stats = 0.0
        while not self.stop.wait(0.5):
            now = time.monotonic() - self.t0
            tree = procs.tree_rss(self.pid)
            self.rss.append((now, tree["rss_kb"] / MIB, tree["largest_kb"] / MIB))
            if now >= next_stats:
                s = memstats(self.port)
                if s is not None:
                    self.stats.append((now, s))
                next_stats = now + 2.0


@contextlib.contextmanager
def serve(variant: Variant, early: bool) -> Iterator[tuple[int, int, str]]:
    """A fresh server on CPU 0, ready: (pid, port, its command line)."""
    if not variant.catzilla:
        spec = PEERS[variant.name]
        venvs.ensure_venv(spec.venv or variant.name)
        with servers.start_server(spec, cpu=0, ready_path="/__memstats") as srv:
            yield srv.pid, srv.port, srv.command
        return
    allocator = variant.allocator or "malloc"
    port = procs.free_port()
    env = {"BENCH_PORT": str(port), "BENCH_ALLOCATOR": allocator}
    executable = None
    if early and allocator != "malloc":
        env["CATZILLA_PROCESS_HEAP"] = allocator  # what `catzilla run` sets: the switch before any import
        from catzilla import _core, cli

        executable = cli.launcher()  # and, where built, before the interpreter's first block (csrc/launcher)
        if executable is not None:
            env[cli.CORE_MODULE_ENV] = _core.__file__ or ""
            env[cli.LIBPYTHON_ENV] = cli.libpython_path()
    server = subprocess.Popen(
        [sys.executable, str(APP)],  # argv[0]: the interpreter, also through the launcher
        executable=executable,
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),  # CPU 0 (wrk runs on CPU 1)
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not procs.port_open(port):
            if time.monotonic() > deadline or server.poll() is not None:
                err = server.stderr.read().decode()[-2000:] if server.stderr else ""
                raise RuntimeError(f"{variant.name}: server did not start: {err}")
            time.sleep(0.1)
        command = " ".join(f"{k}={v}" for k, v in env.items()) + f" {executable or sys.executable} {APP}"
        yield server.pid, port, command
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def run_one(variant: Variant, workload: str, seconds: float, idle: float, lua_dir: Path, early: bool) -> Row:
    path, conns = WORKLOADS[workload]
    with serve(variant, early) as (pid, port, command):
        baseline = procs.tree_rss(pid)["rss_kb"] / MIB
        sampler = Sampler(pid, port)
        sampler.start()
        script = wrk.mixed_script(lua_dir, memstudy.size_pairs()) if workload == "mixed" else None
        result = wrk.run_wrk(
            f"http://127.0.0.1:{port}{path}", duration=seconds, connections=conns, script=script, timeout_s=10
        )
        load_end = time.monotonic() - sampler.t0
        under_load = [s for _, s in sampler.stats]
        end_of_load = memstats(port) or {}
        time.sleep(idle)
        sampler.stop.set()
        sampler.join()
        after = memstats(port) or {}
        tree = procs.tree_rss(pid)
    shares = [s["governed_share"] for s in under_load if s.get("governed_share") is not None]
    frags = [f for f in (fragmentation(variant, s) for s in under_load) if f is not None]
    sampled_peak = max((r for _, r, _ in sampler.rss), default=0.0)
    return {
        "server": variant.name,
        "allocator": variant.allocator,
        "workload": workload,
        "load_seconds": seconds,
        "idle_seconds": idle,
        "valid": result.valid,
        "problems": result.problems(),
        "rps": result.rps,
        "p99_ms": result.p99_ms,
        "baseline_rss_mib": baseline,
        # VmHWM catches a peak between two samples
        "peak_rss_mib": max(sampled_peak, tree["hwm_kb"] / MIB),
        "peak_rss_largest_mib": max((r for _, _, r in sampler.rss), default=None),
        "rss_after_idle_mib": tree["rss_kb"] / MIB,
        "rss_after_idle_largest_mib": tree["largest_kb"] / MIB,
        "processes": tree["processes"],
        "fragmentation_percent_median": statistics.median(frags) if frags else None,
        "fragmentation_percent_after_idle": fragmentation(variant, after),
        "governed_share_median": statistics.median(shares) if shares else None,
        "governed_share_after_idle": after.get("governed_share"),
        "allocated_mib_after_idle": after.get("allocated_mb"),
        "resident_mib_after_idle": after.get("resident_mb"),
        "python_heap_mib_after_idle": (after.get("arenas", {}).get("python") or {}).get("allocated_mb"),
        # the allocator's own figures, to explain the RSS (dirty, retained, glibc's free chunks)
        "memstats_end_of_load": end_of_load,
        "memstats_after_idle": after,
        "load_end_s": load_end,
        "rss_series": [(round(t, 1), round(r, 2)) for t, r, _ in sampler.rss],
        "command": result.command,
        "server_command": command,
    }


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "—" if v is None else format(v, spec)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


SUMMARY_KEYS = (
    "rps",
    "p99_ms",
    "baseline_rss_mib",
    "peak_rss_mib",
    "rss_after_idle_mib",
    "peak_rss_largest_mib",
    "rss_after_idle_largest_mib",
    "fragmentation_percent_median",
    "fragmentation_percent_after_idle",
    "governed_share_median",
    "governed_share_after_idle",
)


def summarize(rows: list[Row], names: list[str]) -> list[Row]:
    out = []
    for workload in WORKLOADS:
        for name in names:
            runs = [r for r in rows if r["workload"] == workload and r["server"] == name and r["valid"]]
            if not runs:
                continue
            s: Row = {"workload": workload, "server": name, "runs": len(runs)}
            for k in SUMMARY_KEYS:
                vals = [float(r[k]) for r in runs if r.get(k) is not None]
                s[k] = statistics.median(vals) if vals else None
                s[k + "_range"] = (min(vals), max(vals)) if vals else None
            out.append(s)
    return out


def _get(summary: list[Row], workload: str, server: str) -> Row | None:
    return next((s for s in summary if s["workload"] == workload and s["server"] == server), None)


def _ratio(a: Row | None, b: Row | None, key: str) -> float | None:
    """a/b - 1 of the medians: -0.30 is 30% less."""
    if a is None or b is None or a.get(key) is None or not b.get(key):
        return None
    return float(a[key]) / float(b[key]) - 1


def _signed(v: float | None) -> str:
    return "—" if v is None else f"{v:+.0%}"


def claims(summary: list[Row]) -> list[tuple[str, str, str, str]]:
    """(claim and source, workload, verdict, numbers): jemalloc against glibc, both Catzilla, medians."""
    je, ma = "catzilla-jemalloc", "catzilla-malloc"
    out: list[tuple[str, str, str, str]] = []
    for w in WORKLOADS:
        a, b = _get(summary, w, je), _get(summary, w, ma)
        if a is None or b is None:
            continue
        for key, measure in (("peak_rss_mib", "peak RSS"), ("rss_after_idle_mib", "RSS after idle")):
            r = _ratio(a, b, key)
            out.append(
                (
                    '"30% less" memory usage (jemalloc; spec: Performance Impact)',
                    f"{w}: {measure}",
                    "reproduced" if r is not None and r <= -0.30 else "not reproduced",
                    f"{_fmt(a[key])} vs glibc {_fmt(b[key])} MiB ({_signed(r)})",
                )
            )
    for w in ("mixed", "churn", "doc"):
        a, b = _get(summary, w, je), _get(summary, w, ma)
        if a is None or b is None:
            continue
        rps, p99 = _ratio(a, b, "rps"), _ratio(a, b, "p99_ms")
        ok = rps is not None and rps >= 0.15
        out.append(
            (
                '"15-30% performance improvement in memory-intensive workloads" (jemalloc; spec: Platforms)',
                w,
                "reproduced" if ok else "not reproduced",
                f"{_fmt(a['rps'], ',.0f')} vs {_fmt(b['rps'], ',.0f')} req/s ({_signed(rps)}); p99 "
                f"{_fmt(a['p99_ms'])} vs {_fmt(b['p99_ms'])} ms ({_signed(p99)})",
            )
        )
    for w in WORKLOADS:
        a, b = _get(summary, w, je), _get(summary, w, ma)
        if a is None or b is None:
            continue
        fa, fb = a["fragmentation_percent_median"], b["fragmentation_percent_median"]
        ok = fa is not None and fb is not None and fa < fb and fa < 10
        out.append(
            (
                '"Reduced memory fragmentation", "Low" (jemalloc; fragmentation_percent < 10 read as efficient)',
                w,
                "reproduced" if ok else "not reproduced",
                f"{_fmt(fa)}% vs glibc {_fmt(fb)}% under load",
            )
        )
    return out


def markdown(summary: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        "# Memory study v2: the allocator at process scope, with peers",
        "",
        f"`python -m benchmarks.memstudy2 {meta['args']}` on {meta['date']} (commit `{meta['commit']}`); "
        "medians over the runs (range: min-max). Server on CPU 0, wrk on CPU 1. Method: benchmarks/memstudy2.py. "
        "RSS: the server's process tree (Granian: supervisor + worker; worker alone in results.json).",
        "",
        "| workload | server | runs | req/s | p99 ms | peak RSS MiB (range) | RSS after idle MiB (range) "
        "| fragmentation % | share governed (load) | share governed (idle) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:

        def rng(key: str, s: Row = s) -> str:
            r = s[key + "_range"]
            return f"{_fmt(s[key])} ({r[0]:.0f}-{r[1]:.0f})" if r else "—"

        lines.append(
            f"| {s['workload']} | {s['server']} | {s['runs']} | {_fmt(s['rps'], ',.0f')} | {_fmt(s['p99_ms'])} "
            f"| {rng('peak_rss_mib')} | {rng('rss_after_idle_mib')} | {_fmt(s['fragmentation_percent_median'])} "
            f"| {_pct(s['governed_share_median'])} | {_pct(s['governed_share_after_idle'])} |"
        )
    lines += ["", "## The spec's claims (jemalloc against glibc, both Catzilla, medians)", ""]
    lines += ["| claim | workload | verdict | numbers |", "|---|---|---|---|"]
    lines += [f"| {c} | {w} | {v} | {n} |" for c, w, v, n in claims(summary)]
    return "\n".join(lines) + "\n"


COLORS = {
    "catzilla-malloc": "#7f7f7f",
    "catzilla-jemalloc": "#1f77b4",
    "catzilla-mimalloc": "#2ca02c",
    "fastapi": "#d62728",
    "granian": "#ff7f0e",
}


def plot(results: Path) -> list[Path]:
    """Grouped bars per workload and server, and RSS over time of the churn soak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(results.read_text())
    summary: list[Row] = data["summary"]
    names: list[str] = data["meta"]["servers"]
    out = results.parent
    written = []
    bars = (
        ("peak_rss_mib", "Peak RSS (MiB)", "peak-rss.png"),
        ("rss_after_idle_mib", f"RSS after {data['meta']['idle']:.0f} s idle (MiB)", "rss-after-idle.png"),
        ("rps", "Throughput (req/s; 2-core machine shared with other jobs)", "throughput.png"),
        ("fragmentation_percent_median", "Fragmentation under load (%; glibc: whole heap)", "fragmentation.png"),
    )
    workloads = [w for w in WORKLOADS if any(s["workload"] == w for s in summary)]
    width = 0.8 / max(1, len(names))
    for key, title, fname in bars:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        for i, name in enumerate(names):
            xs, ys, lo, hi = [], [], [], []
            for j, w in enumerate(workloads):
                s = _get(summary, w, name)
                if s is None or s[key] is None:
                    continue
                xs.append(j + (i - (len(names) - 1) / 2) * width)
                ys.append(s[key])
                r = s[key + "_range"]
                lo.append(s[key] - r[0])
                hi.append(r[1] - s[key])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=name, color=COLORS.get(name))
        ax.set_xticks(range(len(workloads)), workloads)
        ax.set_title(f"{title}: median of {data['meta']['runs']} runs, bars: min-max")
        ax.legend(fontsize=8, ncol=len(names))
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        written.append(out / fname)
    churn = [r for r in data["rows"] if r["workload"] == "churn" and r.get("rss_series")]
    if churn:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        seen: set[str] = set()
        for r in churn:
            t = [p[0] for p in r["rss_series"]]
            v = [p[1] for p in r["rss_series"]]
            label = None if r["server"] in seen else r["server"]
            seen.add(r["server"])
            ax.plot(t, v, color=COLORS.get(r["server"]), lw=1, alpha=0.8, label=label)
        ax.axvline(churn[0]["load_end_s"], color="k", ls=":", lw=1)
        ax.set_xlabel("seconds (dotted: end of load, then idle)")
        ax.set_ylabel("RSS (MiB)")
        ax.set_title("Churn soak: RSS over time, every run")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "churn-rss.png", dpi=110)
        plt.close(fig)
        written.append(out / "churn-rss.png")
    return written


def plot_anywhere(results: Path) -> None:
    """Plot here if this interpreter has matplotlib, else from the bench venv (benchmarks/peers/bench.txt)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        python = venvs.ensure_venv("bench")
        subprocess.run([str(python), "-m", "benchmarks.memstudy2", "--plot", str(results)], cwd=ROOT, check=True)
        return
    for p in plot(results):
        print(f"wrote {p}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--churn-seconds", type=float, default=600)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--allocators", default=",".join(ALLOCATORS), help="Catzilla's; empty: none")
    ap.add_argument("--peers", default=",".join(PEERS), help="for scale; empty: none")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--plot", type=Path, metavar="RESULTS_JSON", help="only draw the plots of a results.json")
    ap.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS_JSON",
        help="only rewrite the summary, summary.md and plots of a results.json",
    )
    ap.add_argument(
        "--at-app",
        action="store_true",
        help="switch when the app is made (a script's app.listen()), not before the imports (catzilla run)",
    )
    args = ap.parse_args()
    if args.plot:
        for p in plot(args.plot):
            print(f"wrote {p}")
        return
    if args.report:
        data = json.loads(args.report.read_text())
        data["summary"] = summarize(data["rows"], data["meta"]["servers"])
        args.report.write_text(json.dumps(data, indent=1))
        (args.report.parent / "summary.md").write_text(markdown(data["summary"], data["meta"]))
        plot_anywhere(args.report)
        return
    variants = [Variant(f"catzilla-{a}", a) for a in args.allocators.split(",") if a]
    variants += [Variant(p, None) for p in args.peers.split(",") if p]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="memstudy2-") as tmp:
        for run in range(args.runs):
            for workload in args.workloads.split(","):
                for variant in variants:  # interleaved: the machine's speed drifts
                    seconds = args.churn_seconds if workload == "churn" else args.seconds
                    r = run_one(variant, workload, seconds, args.idle, Path(tmp), not args.at_app)
                    r["run"] = run
                    rows.append(r)
                    print(
                        f"{time.strftime('%H:%M:%S')} [run {run}] {workload:6} {variant.name:18} {r['rps']:10,.0f} "
                        f"req/s  p99 {_fmt(r['p99_ms'])} ms  peak {_fmt(r['peak_rss_mib'])} MiB  "
                        f"idle {_fmt(r['rss_after_idle_mib'])} MiB  frag {_fmt(r['fragmentation_percent_median'])}  "
                        f"share {_pct(r['governed_share_median'])}"
                        + ("" if r["valid"] else f"  INVALID {r['problems']}"),
                        flush=True,
                    )
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    names = [v.name for v in variants]
    meta = {
        "args": " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit.stdout.strip(),
        "servers": names,
        "runs": args.runs,
        "idle": args.idle,
        "peers": {p: {"venv": PEERS[p].venv, "notes": PEERS[p].notes} for p in names if p in PEERS},
        "versions": {
            p: {d: venvs.dist_version(venvs.venv_python(PEERS[p].venv or p), d) for d in PEERS[p].dists}
            for p in names
            if p in PEERS
        },
    }
    summary = summarize(rows, names)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.json"
    results.write_text(json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=1))
    (args.out / "summary.md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))
    plot_anywhere(results)


if __name__ == "__main__":
    main()
