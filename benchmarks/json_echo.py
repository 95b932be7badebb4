"""JSON echo of 10 KiB end to end: request.json() by the C reader, and as it was before.

    .venv/bin/python -m benchmarks.json_echo [--rounds 3] [--seconds 5] [--out benchmarks/results]

One Catzilla app (`POST /echo` returns `request.json()`, as
benchmarks/apps/catzilla_ours.py) runs twice: as built ("C reader") and with
`catzilla._json.loads` set back to what it was before the reader (orjson
when installed, checked for long numbers, else json.loads: "before"). The
body is a bytes subclass, which orjson refuses, so "before" was json.loads
after orjson's refusal; "orjson alone" (orjson.loads on a bytes copy, not
json.loads's values for big integers) shows what orjson itself would do.
`wrk -t1 -c16` POSTs the ~10 KiB body of the harness's echo_10k workload;
the servers take turns, `--rounds` times each; medians of req/s and p99.
The answer is checked before each round. Writes json_echo.json and
json_echo.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from benchmarks.harness.workloads import ECHO_10K
from benchmarks.harness.wrk import post_script, run_wrk

APP = textwrap.dedent(
    """
    import json, os, re, sys
    from catzilla import Catzilla, Request, _json

    if os.environ["ECHO_READER"] == "before":
        try:
            import orjson
        except ImportError:
            orjson = None
        long_number, long_number_str = re.compile(rb"\\d{19}"), re.compile(r"\\d{19}")

        def loads(data):
            # catzilla._json.loads before the C reader
            if orjson is not None:
                pattern = long_number_str if isinstance(data, str) else long_number
                if pattern.search(data) is None:
                    try:
                        return orjson.loads(data)
                    except orjson.JSONDecodeError:
                        pass
            return json.loads(data)

        _json.loads = loads
    elif os.environ["ECHO_READER"] == "orjson":
        import orjson

        def loads(data):
            # orjson alone, on a bytes copy (it refuses bytes subclasses, which the body is)
            return orjson.loads(bytes(data))

        _json.loads = loads

    app = Catzilla(production=True)

    @app.post("/echo")
    def echo(request: Request):
        return request.json()

    app.listen(port=int(sys.argv[1]), host="127.0.0.1")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(reader: str, script: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, ECHO_READER=reader)
    cmd = [sys.executable, str(script), str(port)]
    if os.path.exists("/usr/bin/taskset"):
        cmd = ["taskset", "-c", "0", *cmd]  # wrk gets CPU 1
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/echo"
    deadline = time.monotonic() + 20
    while True:
        try:
            req = urllib.request.Request(url, data=ECHO_10K, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as r:
                assert json.loads(r.read()) == json.loads(ECHO_10K), "the echo is not the body"
            return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"the {reader} server did not start") from None
            time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    load = os.getloadavg()
    results: dict[str, list[tuple[float, float, float]]] = {"before": [], "orjson alone": [], "C reader": []}
    with tempfile.TemporaryDirectory(prefix="cz-json-echo-") as tmp:
        script = Path(tmp) / "app.py"
        script.write_text(APP)
        lua = post_script(Path(tmp), ECHO_10K)
        for _ in range(args.rounds):
            for reader in results:
                proc, url = start({"before": "before", "orjson alone": "orjson"}.get(reader, "reader"), script)
                try:
                    run_wrk(url, duration=1, connections=16, script=lua)  # warm-up
                    cpu = cpu_seconds(proc.pid)
                    r = run_wrk(url, duration=args.seconds, connections=16, script=lua)
                    cpu_us = (cpu_seconds(proc.pid) - cpu) / max(r.requests, 1) * 1e6
                    assert r.valid, r.problems()
                    results[reader].append((r.rps, (r.p99_ms or 0.0), cpu_us))
                    print(f"{reader:>12}: {r.rps:9.0f} req/s  p99 {(r.p99_ms or 0.0):.2f} ms  "
                          f"server CPU {cpu_us:.1f} us/request", flush=True)  # fmt: skip
                finally:
                    proc.terminate()
                    proc.wait(10)
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in results.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "json_echo.json").write_text(json.dumps({"rounds": results, "median": med}, indent=2) + "\n")
    lines = [
        "# JSON echo of 10 KiB: request.json() before and with the C reader",
        "",
        f"`POST /echo` returning `request.json()`, the {len(ECHO_10K)}-byte body of the echo_10k workload; "
        f"`wrk -t1 -c16 -d{args.seconds:g}s` on CPU 1, the server on CPU 0; the servers take turns, "
        f"{args.rounds} rounds each, medians. Load average (1 min) at start {load[0]:.1f}, at the end "
        f"{os.getloadavg()[0]:.1f}: the machine's 2 CPUs are shared, so compare within this table only. "
        "Before: orjson.loads (installed here) behind a long-number check, "
        "as catzilla._json.loads was: the body is a bytes subclass, which orjson refuses, so before "
        "was json.loads after orjson's refusal. orjson alone: orjson.loads(bytes(body)), for reference.",
        "",
        "Server CPU per request (user + system time of the server process during the run, divided by "
        "the requests) is the steadier figure here: other work on the machine lowers req/s and raises "
        "p99 whenever it takes the server's CPU, but does not add to the server's own CPU time.",
        "",
        "| request.json() | req/s | p99 (ms) | server CPU per request (µs) |",
        "|---|---|---|---|",
    ]
    for k, (rps, p99, cpu_us) in med.items():
        lines.append(f"| {k} | {rps:.0f} | {p99:.2f} | {cpu_us:.1f} |")
    c = med["C reader"]
    lines += ["", f"req/s, C reader / before: {c[0] / med['before'][0]:.2f}x, C reader / orjson alone: "
              f"{c[0] / med['orjson alone'][0]:.2f}x. Server CPU per request, before / C reader: "
              f"{med['before'][2] / c[2]:.2f}x, orjson alone / C reader: {med['orjson alone'][2] / c[2]:.2f}x "
              "(above 1: the C reader costs less).", ""]  # fmt: skip
    lines += ["Command: `python -m benchmarks.json_echo`", ""]
    (args.out / "json_echo.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
