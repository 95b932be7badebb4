"""The memory study: the same Catzilla app with use_jemalloc=True vs False.

(a) sustained: POST /mem?size=R with a body of B bytes, where B and R are
    drawn independently from a log-uniform distribution on [1 KiB, 1 MiB]
    (a fixed seed; the same cyclic sequence for every server), at high
    concurrency, for a while;
(b) spike then idle: the same load at 256 connections for a short burst,
    then nothing, to see what memory is given back.

A sampler reads the server's VmRSS from /proc every 0.5 s and, for Catzilla,
GET /__memstats (app.get_memory_stats()). A raw ASGI app on uvicorn runs the
same load for scale.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .servers import ServerError, ServerSpec, _script, _uvicorn, start_server
from .wrk import mixed_script, run_wrk

KIB, MIB = 1024, 1024 * 1024


@dataclass
class Variant:
    name: str
    label: str
    spec: ServerSpec
    env: dict[str, str] = field(default_factory=dict)
    stats: bool = False  # serves GET /__memstats


def variants() -> list[Variant]:
    def cz(alloc: str) -> Variant:
        spec = ServerSpec(
            f"catzilla-{alloc}",
            f"Catzilla use_jemalloc={alloc == 'jemalloc'}",
            "ours",
            None,
            _script("catzilla_memstudy.py"),
            ("catzilla",),
        )
        return Variant(spec.name, spec.label, spec, {"BENCH_ALLOCATOR": alloc}, stats=True)

    asgi = ServerSpec(
        "asgi-uvicorn",
        "raw ASGI / uvicorn",
        "peer",
        "uvicorn",
        _uvicorn("asgi_memstudy"),
        ("uvicorn", "uvloop", "httptools"),
    )
    return [cz("jemalloc"), cz("malloc"), Variant(asgi.name, asgi.label, asgi)]


def size_pairs(count: int = 256, seed: int = 20240601, lo: int = KIB, hi: int = MIB) -> list[tuple[int, int]]:
    """(body, response) sizes, each log-uniform on [lo, hi]: most small, a long tail up to 1 MiB."""
    rnd = random.Random(seed)

    def draw() -> int:
        return round(math.exp(rnd.uniform(math.log(lo), math.log(hi))))

    return [(draw(), draw()) for _ in range(count)]


def describe_sizes(pairs: list[tuple[int, int]]) -> dict:
    sizes = sorted([b for b, _ in pairs] + [r for _, r in pairs])
    q = lambda p: sizes[min(len(sizes) - 1, int(p * len(sizes)))]  # noqa: E731
    return {
        "distribution": "log-uniform on [1 KiB, 1 MiB], body and response drawn independently",
        "count": len(pairs),
        "mean_kib": statistics.fmean(sizes) / KIB,
        "median_kib": q(0.5) / KIB,
        "p90_kib": q(0.9) / KIB,
        "max_kib": sizes[-1] / KIB,
    }


class Sampler(threading.Thread):
    """Samples the server's RSS (and its memory stats) every `period` seconds."""

    def __init__(self, server, stats: bool, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.server, self.stats, self.period = server, stats, period
        self.samples: list[dict] = []
        self.marks: dict[str, float] = {}
        self._halt = threading.Event()
        self.t0 = time.monotonic()

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self.t0, 3)

    def run(self) -> None:
        next_t = time.monotonic()
        while not self._halt.is_set():
            t = time.monotonic() - self.t0
            s: dict = {"t": round(t, 3), "rss_mb": procs.tree_rss(self.server.pid)["rss_kb"] / KIB}
            if self.stats:
                try:
                    r = self.server.request("/__memstats", timeout=2.0)
                    d = json.loads(r.body)
                    s.update(
                        {
                            k: d.get(k)
                            for k in (
                                "allocated_mb",
                                "active_mb",
                                "resident_mb",
                                "dirty_mb",
                                "fragmentation_percent",
                                "process_rss_mb",
                            )
                        }
                    )
                    if d.get("allocator") == "malloc" and d.get("process_fragmentation_percent") is not None:
                        # glibc's heap: the app's own figure under malloc counts only its blocks
                        s["fragmentation_percent"] = d["process_fragmentation_percent"]
                    s["arenas"] = {
                        name: {"allocated_mb": a.get("allocated_mb"), "resident_mb": a.get("resident_mb")}
                        for name, a in (d.get("arenas") or {}).items()
                        if name in ("request", "response")
                    }
                    s["stats_latency_ms"] = round(r.seconds * 1000, 1)
                except Exception as e:
                    s["stats_error"] = type(e).__name__
            self.samples.append(s)
            next_t += self.period
            self._halt.wait(max(0.0, next_t - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _series_max(samples: list[dict], key: str, t0: float = -1, t1: float = math.inf) -> float | None:
    vals = [s[key] for s in samples if s.get(key) is not None and t0 <= s["t"] <= t1]
    return max(vals) if vals else None


def _series_last(samples: list[dict], key: str) -> float | None:
    vals = [s[key] for s in samples if s.get(key) is not None]
    return vals[-1] if vals else None


def _series_median(samples: list[dict], key: str, t0: float, t1: float) -> float | None:
    vals = [s[key] for s in samples if s.get(key) is not None and t0 <= s["t"] <= t1]
    return statistics.median(vals) if vals else None


def _run_phase(
    v: Variant,
    script: Path,
    connections: int,
    load_s: float,
    before_s: float,
    after_s: float,
    server_cpu,
    client_cpu,
    log,
) -> dict:
    out: dict = {"variant": v.name, "connections": connections, "load_seconds": load_s, "status": "ok"}
    try:
        srv = start_server(v.spec, env=v.env, cpu=server_cpu)
    except ServerError as e:
        out.update(status="start-failed", error=str(e), excerpt=e.excerpt)
        log(f"  {v.name}: start failed: {e}")
        return out
    with srv:
        out["server_command"] = srv.command
        sampler = Sampler(srv, v.stats)
        sampler.start()
        time.sleep(before_s)
        sampler.mark("load_start")
        res = run_wrk(srv.url("/mem"), duration=load_s, connections=connections, script=script, cpu=client_cpu)
        sampler.mark("load_end")
        time.sleep(after_s)
        sampler.stop()
        tree = srv.rss()
        alive = srv.alive()
    out["wrk"] = res.to_dict()
    out["valid"] = res.valid and alive
    if not alive:
        out["status"] = "crashed"
        out["excerpt"] = srv.log_tail()
    elif not res.valid:
        out["status"] = "invalid"
        out["error"] = res.problems()
    s, m = sampler.samples, sampler.marks
    out["samples"] = s
    out["marks"] = m
    out["rps"] = res.rps
    out["mb_per_s"] = res.transfer_bytes_per_s / MIB
    out["p50_ms"], out["p99_ms"] = res.p50_ms, res.p99_ms
    out["rss_baseline_mb"] = _series_median(s, "rss_mb", 0, m["load_start"])
    out["rss_peak_mb"] = max(filter(None, [_series_max(s, "rss_mb"), tree["hwm_kb"] / KIB]), default=None)
    out["rss_peak_sampled_mb"] = _series_max(s, "rss_mb")
    out["rss_end_of_load_mb"] = _series_median(s, "rss_mb", m["load_end"] - 1.0, m["load_end"] + 0.3)
    out["rss_final_mb"] = tree["rss_kb"] / KIB
    if v.stats:
        for key in ("allocated_mb", "resident_mb", "dirty_mb"):
            out[f"{key}_peak"] = _series_max(s, key)
            out[f"{key}_final"] = _series_last(s, key)
        out["fragmentation_percent_max_under_load"] = _series_max(
            s, "fragmentation_percent", m["load_start"], m["load_end"]
        )
        out["fragmentation_percent_median_under_load"] = _series_median(
            s, "fragmentation_percent", m["load_start"], m["load_end"]
        )
        out["fragmentation_percent_final"] = _series_last(s, "fragmentation_percent")
        out["stats_timeouts"] = sum(1 for x in s if "stats_error" in x)
    log(
        f"  {v.name}: {res.rps:,.0f} req/s ({out['mb_per_s']:.0f} MiB/s), p99 {res.p99_ms or 0:.1f} ms, "
        f"RSS peak {out['rss_peak_mb']:.1f} MiB, final {out['rss_final_mb']:.1f} MiB"
        + ("" if out["valid"] else f"  INVALID: {out.get('error') or out['status']}")
    )
    return out


def run_study(cfg, log=print, server_cpu=0, client_cpu=1, only: list[str] | None = None) -> dict:
    """cfg: mem_runs, mem_duration, mem_connections, spike_duration, idle_duration."""
    pairs = size_pairs()
    tmp = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    script = mixed_script(tmp, pairs)
    vs = [v for v in variants() if not only or v.name in only]
    result: dict = {
        "sizes": describe_sizes(pairs),
        "variants": {v.name: {"label": v.label, "env": v.env, "dists": list(v.spec.dists)} for v in vs},
        "config": {
            "runs": cfg.mem_runs,
            "sustained_seconds": cfg.mem_duration,
            "connections": cfg.mem_connections,
            "spike_seconds": cfg.spike_duration,
            "spike_connections": 256,
            "idle_seconds": cfg.idle_duration,
            "sample_period_s": 0.5,
        },
        "lua_script": script.read_text(),
        "sustained": {v.name: [] for v in vs},
        "spike": {},
    }
    for run in range(cfg.mem_runs):
        log(
            f"[memory] (a) sustained mixed-size, run {run + 1}/{cfg.mem_runs}: "
            f"-c{cfg.mem_connections} {cfg.mem_duration:.0f}s"
        )
        order = vs if run % 2 == 0 else list(reversed(vs))  # alternate the order against drift
        for v in order:
            result["sustained"][v.name].append(
                _run_phase(v, script, cfg.mem_connections, cfg.mem_duration, 1.0, 1.0, server_cpu, client_cpu, log)
            )
    log(f"[memory] (b) spike -c256 {cfg.spike_duration:.0f}s then idle {cfg.idle_duration:.0f}s")
    for v in vs:
        result["spike"][v.name] = _run_phase(
            v, script, 256, cfg.spike_duration, 2.0, cfg.idle_duration, server_cpu, client_cpu, log
        )
    result["summary"] = summarize(result)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def _med(values):
    values = [x for x in values if x is not None]
    return statistics.median(values) if values else None


def summarize(result: dict) -> dict:
    out: dict = {}
    for name, runs in result["sustained"].items():
        ok = [r for r in runs if r.get("valid")]
        out[name] = {
            "valid_runs": len(ok),
            "runs": len(runs),
            "rps_median": _med([r["rps"] for r in ok]),
            "rps_min": min((r["rps"] for r in ok), default=None),
            "rps_max": max((r["rps"] for r in ok), default=None),
            "mb_per_s_median": _med([r["mb_per_s"] for r in ok]),
            "p99_ms_median": _med([r["p99_ms"] for r in ok]),
            "rss_peak_mb_median": _med([r.get("rss_peak_mb") for r in ok]),
            "allocated_mb_peak_median": _med([r.get("allocated_mb_peak") for r in ok]),
            "resident_mb_peak_median": _med([r.get("resident_mb_peak") for r in ok]),
            "fragmentation_percent_median": _med([r.get("fragmentation_percent_median_under_load") for r in ok]),
        }
        sp = result["spike"].get(name) or {}
        out[name].update(
            {
                "spike_valid": bool(sp.get("valid")),
                "spike_rss_baseline_mb": sp.get("rss_baseline_mb"),
                "spike_rss_peak_mb": sp.get("rss_peak_mb"),
                "spike_rss_after_idle_mb": sp.get("rss_final_mb"),
                "spike_resident_mb_after_idle": sp.get("resident_mb_final"),
                "spike_allocated_mb_after_idle": sp.get("allocated_mb_final"),
            }
        )
    je, ma = out.get("catzilla-jemalloc"), out.get("catzilla-malloc")
    if je and ma:

        def ratio(a, b):
            return a / b if a is not None and b else None

        out["jemalloc_vs_malloc"] = {
            "throughput_ratio": ratio(je["rps_median"], ma["rps_median"]),
            "rss_peak_ratio": ratio(je["rss_peak_mb_median"], ma["rss_peak_mb_median"]),
            "resident_peak_ratio": ratio(je["resident_mb_peak_median"], ma["resident_mb_peak_median"]),
            "rss_after_idle_ratio": ratio(je["spike_rss_after_idle_mb"], ma["spike_rss_after_idle_mb"]),
            "spike_rss_peak_ratio": ratio(je["spike_rss_peak_mb"], ma["spike_rss_peak_mb"]),
        }
    return out
