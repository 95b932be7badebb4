"""The framework target: our typed route against our own hello world, on one server, in alternation.

Throughput on a shared machine drifts by tens of percent over minutes, so
the two are not taken from separate runs: one server serves both, and the
study alternates hello / typed runs, pairing each typed run with the hello
run just before it. The verdict is the median of the pair ratios.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from .bench import Profile
from .procs import cpu_seconds
from .servers import ServerError, get_spec, start_server
from .workloads import BY_NAME, verify
from .wrk import post_script, run_wrk

TARGET = 0.75


def timed_run(srv, url: str, duration: float, **kw) -> tuple:
    """One wrk run and the server's CPU microseconds per request during it."""
    before = cpu_seconds(srv.proc.pid)
    r = run_wrk(url, duration=duration, **kw)
    spent = cpu_seconds(srv.proc.pid) - before
    return r, (spent * 1e6 / r.requests if r.requests else None)


def run_pairs(prof: Profile, pairs: int, python: str | None = None, log=print) -> dict:
    hello, typed = BY_NAME["hello"], BY_NAME["typed"]
    out: dict = {
        "status": "ok",
        "target": TARGET,
        "pairs": [],
        "hello": hello.describe(),
        "typed": typed.describe(),
        "duration": prof.duration,
    }
    try:
        srv = start_server(get_spec("catzilla"), python=python, cpu=prof.server_cpu, env=dict(typed.server_env))
    except ServerError as e:
        return {"status": "start-failed", "error": str(e)}
    tmp = Path(tempfile.mkdtemp(prefix="bench-framework-"))
    try:
        with srv:
            for w in (hello, typed):
                check = verify(srv, w)
                if not check["ok"]:
                    return {"status": "wrong-response", "error": f"{w.name}: {check['problem']}"}
            script = post_script(tmp, typed.body or b"")
            kw = dict(connections=64, threads=prof.threads, cpu=prof.client_cpu)
            run_wrk(srv.url(hello.path), duration=prof.warmup, **kw)
            run_wrk(srv.url(typed.path), duration=prof.warmup, script=script, **kw)
            for _ in range(pairs):
                h, h_us = timed_run(srv, srv.url(hello.path), prof.duration, **kw)
                t, t_us = timed_run(srv, srv.url(typed.path), prof.duration, script=script, **kw)
                if not (h.valid and t.valid and h_us and t_us):
                    out["pairs"].append({"invalid": f"{h.problems()} {t.problems()}".strip()})
                    continue
                out["pairs"].append(
                    {
                        "hello": h.rps,
                        "typed": t.rps,
                        "ratio": t.rps / h.rps,
                        "hello_cpu_us": h_us,
                        "typed_cpu_us": t_us,
                        "cpu_ratio": h_us / t_us,
                    }
                )
                log(
                    f"  pair: hello {h.rps:>10,.0f}  typed {t.rps:>10,.0f}  ratio {t.rps / h.rps:.3f}"
                    f"  | CPU per request {h_us:.2f} / {t_us:.2f} us = {h_us / t_us:.3f}"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    valid = [p for p in out["pairs"] if "ratio" in p]
    if not valid:
        out.update(status="invalid", error="no valid pair")
        return out
    out["hello_median"] = statistics.median(p["hello"] for p in valid)
    out["typed_median"] = statistics.median(p["typed"] for p in valid)
    out["ratio_median"] = statistics.median(p["ratio"] for p in valid)
    out["hello_cpu_us"] = statistics.median(p["hello_cpu_us"] for p in valid)
    out["typed_cpu_us"] = statistics.median(p["typed_cpu_us"] for p in valid)
    out["cpu_ratio_median"] = statistics.median(p["cpu_ratio"] for p in valid)
    out["met"] = out["ratio_median"] >= TARGET
    return out
