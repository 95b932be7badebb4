"""Files, static directories and streams: throughput side by side, and memory.

    make bench-streaming                          # everything below, ~3 minutes
    python -m benchmarks.streaming --only memory  # or: static, stream

static  wrk on a 1 KiB, a 100 KiB and a 10 MiB file from a static directory:
        Catzilla (StaticFiles, answered in C), nginx (sendfile, one worker),
        Starlette's StaticFiles on uvicorn (the fastapi venv), Granian's own
        static file route (the granian venv), catzilla 0.2.3's mount_static
        (the catzilla023 venv, apps/catzilla_023_static.py). Each server's
        answer (status, length) is checked before it is timed. Server on
        CPU 0, wrk on CPU 1.
stream  a 100 MiB StreamingResponse (64 KiB pieces from a sync generator)
        read by one client: MiB/s.
memory  the server's RSS while a 1 GiB file goes to 8 slow clients and a
        1 GiB generator streams to one more: the growth over idle.
sse     server-sent events fanned out to 1,000 clients: one publisher wakes
        every subscriber's async generator in turn; events/s received in all.
        Catzilla (catzilla.sse) against sse-starlette on uvicorn (the sse venv).

Results: benchmarks/results/streaming/README.md and results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from benchmarks.harness import procs, venvs, wrk
from benchmarks.harness.paths import APPS, our_python
from benchmarks.harness.servers import nginx_binary

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "streaming"
OURS = our_python()
SIZES = {"1k": 1024, "100k": 100 * 1024, "10m": 10 * 1024 * 1024}
GIB = 1 << 30


def pinned(cmd: list[str], cpu: int = 0) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if shutil.which("taskset") else cmd


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not procs.port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {proc.args}")
        time.sleep(0.05)


def start(cmd: list[str], port: int, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        pinned(cmd),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        wait_port(port, proc)
    except RuntimeError as exc:
        if proc.poll() is None:
            proc.kill()
        tail = proc.communicate(timeout=10)[1].decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{exc}{': ' + ' / '.join(tail) if tail else ''}") from None
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(8)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


CATZILLA_STATIC = """
import sys
from catzilla import Catzilla
from catzilla.staticfiles import StaticFiles
app = Catzilla(production=True)
app.mount("/static", StaticFiles(directory=sys.argv[1]))
app.listen(port=int(sys.argv[2]))
"""

STARLETTE_STATIC = """
import os
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
app = Starlette(routes=[Mount("/static", StaticFiles(directory=os.environ["STATIC_DIR"]))])
"""

GRANIAN_APP = """
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""

CATZILLA_STREAMS = """
import sys
from catzilla import Catzilla, FileResponse, StreamingResponse
app = Catzilla(production=True)
PIECE = b"s" * 65536

@app.get("/file")
def file():
    return FileResponse(sys.argv[1])

@app.get("/stream")
def stream(mib: int = 100):
    def gen():
        for _ in range(mib * 16):
            yield PIECE
    return StreamingResponse(gen())

app.listen(port=int(sys.argv[2]))
"""


SSE_APP = """
import asyncio
import os
import sys

if os.environ.get("SSE_PEER") == "starlette":
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.routing import Route
else:
    from catzilla import Catzilla
    from catzilla.sse import EventSourceResponse

state = {"tick": 0, "cond": None}


async def publisher():
    cond = state["cond"]
    while True:
        async with cond:
            state["tick"] += 1
            cond.notify_all()
        await asyncio.sleep(0)


async def subscribe():
    if state["cond"] is None:
        state["cond"] = asyncio.Condition()
        asyncio.get_running_loop().create_task(publisher())
    cond = state["cond"]
    while True:
        async with cond:
            await cond.wait()
            tick = state["tick"]
        yield {"data": f"tick {tick}"}


if os.environ.get("SSE_PEER") == "starlette":
    async def events(request):
        return EventSourceResponse(subscribe(), ping=60)

    app = Starlette(routes=[Route("/events", events)])
else:
    app = Catzilla(production=True)

    @app.get("/events")
    async def events():
        return EventSourceResponse(subscribe(), ping=60)

    app.listen(port=int(sys.argv[1]))
"""


def sse_clients(port: int, n: int, seconds: float) -> float:
    """Events/s received by `n` clients (each event ends with a blank line: CRLF CRLF)."""
    import selectors

    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /events HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n\r\n")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    time.sleep(1.0)  # every subscriber in
    for key, _ in sel.select(timeout=0):
        with contextlib.suppress(BlockingIOError):
            while key.fileobj.recv(1 << 20):
                pass
    events = 0
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < seconds:
        for key, _ in sel.select(timeout=0.1):
            with contextlib.suppress(BlockingIOError):
                events += key.fileobj.recv(1 << 20).count(b"\r\n\r\n")
    for s in socks:
        s.close()
    return events / elapsed


def bench_sse(tmp: Path, clients: int, seconds: float) -> dict:
    (tmp / "sse_app.py").write_text(SSE_APP)
    rows: dict[str, dict] = {}
    try:
        peer_python = str(venvs.ensure_venv("sse", log=lambda *a: None))
    except Exception as exc:  # reported in the table
        peer_python = ""
        rows["sse-starlette-uvicorn"] = {"skipped": f"venv sse could not be made: {exc}"}
    for name in ("catzilla", "sse-starlette-uvicorn"):
        if name in rows:
            continue
        port = procs.free_port()
        if name == "catzilla":
            cmd, env = [OURS, str(tmp / "sse_app.py"), str(port)], {}
        else:
            cmd = [
                peer_python,
                "-m",
                "uvicorn",
                "sse_app:app",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            env = {"SSE_PEER": "starlette", "PYTHONPATH": str(tmp)}
        proc = start(cmd, port, tmp, env)
        try:
            rows[name] = {"events_per_s": round(sse_clients(port, clients, seconds)), "clients": clients}
        finally:
            stop(proc)
    return rows


def servers(tmp: Path, site: Path) -> list[tuple[str, list[str], dict[str, str], str | None]]:
    """(name, argv with {port}, env, why it is not run)."""
    out: list[tuple[str, list[str], dict[str, str], str | None]] = []
    (tmp / "cz_static.py").write_text(CATZILLA_STATIC)
    out.append(("catzilla", [OURS, str(tmp / "cz_static.py"), str(site), "{port}"], {}, None))
    nginx = nginx_binary()
    if nginx:
        out.append(("nginx", ["nginx-conf"], {}, None))
    else:
        out.append(("nginx", [], {}, "nginx is not installed (apt-get install nginx-light)"))
    for name, venv, argv in (
        (
            "starlette-uvicorn",
            "fastapi",
            [
                "-m",
                "uvicorn",
                "st_static:app",
                "--port",
                "{port}",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
        ),
        (
            "granian-static",
            "granian",
            [
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--port",
                "{port}",
                "--workers",
                "1",
                "--static-path-route",
                "/static",
                "--static-path-mount",
                str(site),
                "--log-level",
                "warning",
                "gr_app:app",
            ],
        ),
        (
            "catzilla-0.2.3",
            "catzilla023",
            [str(APPS / "catzilla_023_static.py"), str(site), "{port}"],
        ),
    ):
        try:
            python = str(venvs.ensure_venv(venv, log=lambda *a: None))
        except Exception as exc:  # reported in the table
            out.append((name, [], {}, f"venv {venv} could not be made: {exc}"))
            continue
        out.append((name, [python, *argv], {"STATIC_DIR": str(site), "PYTHONPATH": str(tmp)}, None))
    (tmp / "st_static.py").write_text(STARLETTE_STATIC)
    (tmp / "gr_app.py").write_text(GRANIAN_APP)
    return out


def nginx_argv(tmp: Path, site: Path, port: int) -> list[str]:
    conf = textwrap.dedent(f"""
        worker_processes 1;
        master_process off;
        daemon off;
        pid {tmp}/nginx.pid;
        error_log {tmp}/nginx-error.log warn;
        events {{ worker_connections 4096; }}
        http {{
            access_log off;
            sendfile on;
            tcp_nopush on;
            keepalive_requests 1000000;
            client_body_temp_path {tmp}/cb; proxy_temp_path {tmp}/px; fastcgi_temp_path {tmp}/fc;
            uwsgi_temp_path {tmp}/uw; scgi_temp_path {tmp}/sc;
            server {{
                listen 127.0.0.1:{port};
                location /static/ {{ alias {site}/; }}
            }}
        }}
    """)
    (tmp / "nginx.conf").write_text(conf)
    return [nginx_binary() or "nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf")]


def check_file(port: int, label: str, expected: bytes) -> str | None:
    """Why the server's answer for /static/<label>.bin is wrong, or None."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/{label}.bin", timeout=30) as r:
            got = r.read()
            status = r.status
    except Exception as exc:
        return f"GET /static/{label}.bin failed: {exc}"
    if status != 200 or got != expected:
        return f"GET /static/{label}.bin answered {status} with {len(got)} bytes, not the file's {len(expected)}"
    return None


def bench_static(tmp: Path, duration: float, runs: int) -> dict:
    """Each run of a size goes through every server in turn (the machine's
    speed drifts: medians over runs measured side by side)."""
    site = tmp / "site"
    site.mkdir()
    files = {name: os.urandom(size) for name, size in SIZES.items()}
    for name, data in files.items():
        (site / f"{name}.bin").write_bytes(data)
    rows: dict[str, dict] = {}
    results: dict[str, dict[str, list]] = {}
    table = servers(tmp, site)
    for name, _, _, why in table:
        if why:
            rows[name] = {"skipped": why}
        else:
            results[name] = {label: [] for label in SIZES}
    failed: dict[str, dict[str, str]] = {name: {} for name in results}
    for label in SIZES:
        for _ in range(runs):
            for name, argv, env, _why in table:
                if name not in results or label in failed[name]:
                    continue
                port = procs.free_port()
                cmd = (
                    nginx_argv(tmp, site, port)
                    if argv == ["nginx-conf"]
                    else [a.replace("{port}", str(port)) for a in argv]
                )
                try:
                    proc = start(cmd, port, tmp, env)
                except RuntimeError as exc:
                    failed[name][label] = str(exc)
                    continue
                try:
                    wrong = check_file(port, label, files[label])
                    if wrong:
                        failed[name][label] = wrong
                        continue
                    conns = 8 if label == "10m" else 64
                    results[name][label].append(
                        wrk.run_wrk(f"http://127.0.0.1:{port}/static/{label}.bin", duration=duration, connections=conns)
                    )
                finally:
                    stop(proc)
    for name in results:
        rows[name] = {}
        for label, done in results[name].items():
            if label in failed[name]:
                rows[name][label] = {"rps": None, "p99_ms": None, "unsupported": failed[name][label]}
                continue
            good = [r for r in done if r.valid]
            rows[name][label] = {
                "rps": statistics.median(r.rps for r in good) if good else None,
                "p99_ms": statistics.median(r.p99_ms for r in good) if good else None,
                "errors": [r.problems() for r in done if not r.valid],
            }
    return {name: rows[name] for name, _, _, _ in table}


def vmrss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def slow_reader(port: int, path: str, stop_at: float, rate: int) -> int:
    """Read `path` at about `rate` bytes/s until `stop_at`; bytes read."""
    got = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        t0 = time.monotonic()
        while time.monotonic() < stop_at:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
            ahead = got / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(min(ahead, 0.05))
    return got


def bench_memory_and_stream(tmp: Path, seconds: float) -> dict:
    big = tmp / "gib.bin"
    with open(big, "wb") as f:  # sparse: no disk, same bytes to send
        f.truncate(GIB)
    (tmp / "cz_streams.py").write_text(CATZILLA_STREAMS)
    port = procs.free_port()
    proc = start([OURS, str(tmp / "cz_streams.py"), str(big), str(port)], port, tmp)
    try:
        # a 100 MiB stream, read as fast as the client can
        t0 = time.monotonic()
        got = 0
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /stream?mib=100 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            while chunk := s.recv(1 << 20):
                got += len(chunk)
        stream_mib_s = got / (1 << 20) / (time.monotonic() - t0)

        time.sleep(0.5)
        idle = vmrss(proc.pid)
        stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=slow_reader, args=(port, "/file", stop_at, 8 << 20)) for _ in range(8)]
        threads.append(threading.Thread(target=slow_reader, args=(port, "/stream?mib=1024", stop_at, 64 << 20)))
        for t in threads:
            t.start()
        peak = idle
        while time.monotonic() < stop_at:
            peak = max(peak, vmrss(proc.pid))
            time.sleep(0.1)
        for t in threads:
            t.join(30)
        return {
            "stream_100mib_mib_s": round(stream_mib_s, 1),
            "idle_rss_kb": idle,
            "peak_rss_kb": peak,
            "growth_mib": round((peak - idle) / 1024, 2),
            "seconds": seconds,
        }
    finally:
        stop(proc)


def report(data: dict) -> str:
    lines = [
        "# Files, static directories and streams",
        "",
        f"`python -m benchmarks.streaming` on {time.strftime('%Y-%m-%d')}; server on CPU 0, wrk on CPU 1;",
        f"median of {data['runs']} runs of {data['duration']} s (`-c64`, `-c8` for 10 MiB).",
        "",
    ]
    static = data.get("static")
    if static:
        lines += [
            "## Static files (requests/s, p99 ms)",
            "",
            "| server | 1 KiB | 100 KiB | 10 MiB |",
            "|---|---:|---:|---:|",
        ]
        for name, row in static.items():
            if "skipped" in row:
                lines.append(f"| {name} | not run: {row['skipped']} | | |")
                continue
            cells = []
            for label in SIZES:
                r = row[label]
                if "unsupported" in r:
                    cells.append(f"not supported: {r['unsupported']}")
                elif r["rps"]:
                    cells.append(f"{r['rps']:,.0f} ({r['p99_ms']:.2f})")
                else:
                    cells.append("failed: " + "; ".join(r.get("errors") or []))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        ours = static.get("catzilla", {})
        lines.append("")
        for peer in ("nginx", "granian-static", "catzilla-0.2.3"):
            other = static.get(peer, {})
            if "skipped" in ours or "skipped" in other or not ours or not other:
                continue
            ratios = [
                f"{label} {ours[label]['rps'] / other[label]['rps']:.2f}x"
                for label in SIZES
                if ours[label]["rps"] and other[label]["rps"]
            ]
            if ratios:
                lines.append(f"- Catzilla / {peer}: " + ", ".join(ratios))
        if "catzilla-0.2.3" in static:
            lines += [
                "",
                "catzilla 0.2.3 is `app.mount_static()` (`benchmarks/apps/catzilla_023_static.py`) with its "
                "defaults, which include an in-memory cache of the files it serves "
                "(`enable_hot_cache=True`, `cache_size_mb=100`).",
            ]
        lines.append("")
    sse = data.get("sse")
    if sse:
        lines += ["## Server-sent events fan-out", "", "| server | clients | events/s received |", "|---|---:|---:|"]
        for name, row in sse.items():
            if "skipped" in row:
                lines.append(f"| {name} | | not run: {row['skipped']} |")
            else:
                lines.append(f"| {name} | {row['clients']:,} | {row['events_per_s']:,} |")
        lines.append("")
    mem = data.get("memory")
    if mem:
        lines += [
            "## Streams and memory",
            "",
            "- a 100 MiB `StreamingResponse` (64 KiB pieces, sync generator) to one client: "
            f"**{mem['stream_100mib_mib_s']} MiB/s**",
            "- RSS while a 1 GiB file goes to 8 slow clients (8 MiB/s each) and a 1 GiB generator streams to one more "
            f"({mem['seconds']:.0f} s): idle {mem['idle_rss_kb'] / 1024:.1f} MiB, "
            f"peak {mem['peak_rss_kb'] / 1024:.1f} MiB, **growth {mem['growth_mib']} MiB** (goal < 16 MiB)",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["static", "memory", "sse"], default=None)
    ap.add_argument("--sse-clients", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory-seconds", type=float, default=15.0)
    args = ap.parse_args()
    if not wrk.wrk_available():
        sys.exit("wrk is not installed (make bench-env installs it)")
    previous = OUT / "results.json"
    data: dict = json.loads(previous.read_text()) if args.only and previous.exists() else {}
    data.update(duration=args.duration, runs=args.runs)
    with tempfile.TemporaryDirectory(prefix="cz-bench-streaming-") as d:
        tmp = Path(d)
        if args.only in (None, "static"):
            data["static"] = bench_static(tmp, args.duration, args.runs)
        if args.only in (None, "memory"):
            data["memory"] = bench_memory_and_stream(tmp, args.memory_seconds)
        if args.only in (None, "sse"):
            data["sse"] = bench_sse(tmp, args.sse_clients, args.duration)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(data, indent=2))
    (OUT / "README.md").write_text(report(data) + "\n")
    print(report(data))


if __name__ == "__main__":
    main()
