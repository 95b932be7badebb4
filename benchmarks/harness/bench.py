"""One measurement: a fresh server, a check of its answer, RSS, warm-up, runs, RSS again."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .servers import ServerError, ServerSpec, start_server
from .workloads import WORKLOADS, Workload, verify
from .wrk import post_script, run_wrk

ALL_WORKLOADS = [w.name for w in WORKLOADS]


@dataclass
class Profile:
    name: str
    warmup: float
    duration: float
    runs: int
    workloads: list[str]
    mem_runs: int
    mem_duration: float
    mem_connections: int
    spike_duration: float
    idle_duration: float
    threads: int = 1
    server_cpu: int = 0
    client_cpu: int = 1
    servers: list[str] = field(default_factory=list)  # empty: all


PROFILES = {
    # < 5 minutes once the venvs exist: every server, the workloads the targets need, one short run.
    "quick": Profile(
        "quick",
        warmup=1,
        duration=2,
        runs=1,
        workloads=["hello", "path", "echo_small", "echo_10k", "typed"],
        mem_runs=1,
        mem_duration=6,
        mem_connections=256,
        spike_duration=4,
        idle_duration=6,
    ),
    # about an hour: every workload, 5 runs of 6 s after a 3 s warm-up; the memory study 3 x 30 s.
    "full": Profile(
        "full",
        warmup=3,
        duration=6,
        runs=5,
        workloads=list(ALL_WORKLOADS),
        mem_runs=3,
        mem_duration=30,
        mem_connections=256,
        spike_duration=15,
        idle_duration=30,
    ),
}


def _stats(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(spec: ServerSpec, w: Workload, prof: Profile, python: str | None = None, log=print) -> dict:
    entry: dict = {"server": spec.name, "workload": w.name, "status": "ok", "request": w.describe()}
    if w.name in spec.skip or (w.only and spec.name not in w.only):
        entry.update(status="not-applicable", error=spec.skip.get(w.name, "no such route in this app"))
        return entry
    try:
        srv = start_server(spec, python=python, cpu=prof.server_cpu, env=dict(w.server_env))
    except ServerError as e:
        entry.update(status="start-failed", error=str(e), excerpt=e.excerpt)
        return entry
    tmp = Path(tempfile.mkdtemp(prefix="bench-lua-"))
    try:
        return _measure(srv, spec, w, prof, entry, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(srv, spec: ServerSpec, w: Workload, prof: Profile, entry: dict, tmp: Path) -> dict:
    runs: list = []
    with srv:
        entry["server_command"] = srv.command
        try:
            check = verify(srv, w)
        except Exception as e:
            check = {"ok": False, "problem": f"{type(e).__name__}: {e}"}
        entry["check"] = check
        if not check["ok"]:
            entry.update(status="wrong-response", error=check["problem"], excerpt=srv.log_tail(800))
            return entry
        time.sleep(0.5)
        entry["rss_before"] = srv.rss()
        script = post_script(tmp, w.body) if w.body is not None else None
        if script is not None:
            entry["lua_script"] = script.read_text()
        kw = dict(
            connections=w.connections, threads=prof.threads, script=script, headers=w.headers, cpu=prof.client_cpu
        )
        warm = run_wrk(srv.url(w.path), duration=prof.warmup, **kw)
        entry["warmup"] = warm.to_dict()
        runs = []
        for _ in range(prof.runs):
            if not srv.alive():
                break
            runs.append(run_wrk(srv.url(w.path), duration=prof.duration, **kw))
        entry["runs"] = [r.to_dict() for r in runs]
        entry["wrk_command"] = runs[0].command if runs else warm.command
        entry["rss_after"] = srv.rss()
        if not srv.alive():
            entry.update(status="crashed", error=f"exited {srv.proc.returncode} under load", excerpt=srv.log_tail(800))
    valid = [r for r in runs if r.valid]
    entry["valid_runs"], entry["invalid_runs"] = len(valid), len(runs) - len(valid)
    if runs and not valid and entry["status"] == "ok":
        entry.update(status="invalid", error="; ".join(sorted({r.problems() for r in runs})))
    elif len(valid) < len(runs):
        entry["flag"] = "; ".join(sorted({r.problems() for r in runs if not r.valid}))
    if not warm.valid:
        entry["warmup_flag"] = warm.problems()
    entry["rps"] = _stats([r.rps for r in valid])
    entry["p50_ms"] = _stats([r.p50_ms for r in valid])
    entry["p99_ms"] = _stats([r.p99_ms for r in valid])
    return entry
