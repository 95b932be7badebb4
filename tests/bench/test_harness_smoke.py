"""The benchmark harness can start and stop one server and measure it (a couple of seconds).

Only this repo's Catzilla, from the interpreter running the tests; no peer
venvs. The benchmarks themselves run with `make bench` / `make bench-quick`.
"""

from __future__ import annotations

import shutil
import sys

import pytest

from benchmarks.harness import BY_WORKLOAD, get_spec, run_wrk, start_server, verify


def test_start_measure_stop_catzilla():
    with start_server(get_spec("catzilla"), python=sys.executable, cpu=None, ready_timeout=20) as srv:
        assert srv.alive()
        check = verify(srv, BY_WORKLOAD["hello"])
        assert check["ok"] and check["identical"], check
        rss = srv.rss()
        assert rss["processes"] == 1 and rss["rss_kb"] > 0
        if shutil.which("wrk") is None:
            pytest.skip("wrk is not installed (apt-get install wrk)")
        result = run_wrk(srv.url("/"), duration=1, connections=4, cpu=None)
        assert result.valid, result.raw
        assert result.requests > 0 and result.rps > 0 and result.p99_ms is not None
    assert srv.exit_code == 0, srv.log_tail()
    assert not srv.alive()


def test_parse_wrk_flags_errors():
    from benchmarks.harness import parse_wrk

    text = """Running 1s test @ http://127.0.0.1:1/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   100.00us   10.00us   1.50ms   90.00%
    Req/Sec    10.00k     1.00k   11.00k    80.00%
  Latency Distribution
     50%   90.00us
     75%  110.00us
     90%  130.00us
     99%    1.20ms
  10000 requests in 1.00s, 1.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 0
  Non-2xx or 3xx responses: 3
Requests/sec:  10000.00
Transfer/sec:      1.50MB
"""
    r = parse_wrk(text)
    assert r.requests == 10000 and r.rps == 10000.0
    assert r.p50_ms == pytest.approx(0.09) and r.p99_ms == pytest.approx(1.2)
    assert r.errors["read"] == 2 and r.non_2xx == 3
    assert not r.valid


def test_framework_pairs_measure_the_typed_route_against_hello():
    import dataclasses

    from benchmarks.harness import framework
    from benchmarks.harness.bench import PROFILES

    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    prof = dataclasses.replace(PROFILES["quick"], warmup=0.3, duration=1, server_cpu=None, client_cpu=None)
    out = framework.run_pairs(prof, 1, python=sys.executable, log=lambda *_: None)
    assert out["status"] == "ok", out
    pair = out["pairs"][0]
    assert pair["hello"] > 0 and pair["typed"] > 0 and pair["typed_cpu_us"] > 0
    assert out["ratio_median"] == pytest.approx(pair["typed"] / pair["hello"])
