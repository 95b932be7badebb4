"""WebSockets side by side: echo, broadcast and memory per idle connection.

    make bench-ws                                          # everything, ~6 minutes
    .venv/bin/python -m benchmarks.websocket_bench --servers socketify,uvicorn --only echo
    .venv/bin/python -m benchmarks.websocket_bench --quick  # short windows, 1,000 idle connections

Servers (each in its own venv, benchmarks/peers/<venv>.txt; the app files are
in benchmarks/apps/):
  catzilla   benchmarks/apps/catzilla_ws.py on this repo's .venv
  socketify  ws_socketify.py (uWebSockets; broadcast through its pub/sub)
  uvicorn    ws_asgi.py, a raw ASGI app, on uvicorn with the websockets library
             (--ws websockets, uvloop, httptools)
  fastapi    ws_fastapi.py on the same uvicorn
  granian    ws_rsgi.py, Granian's RSGI websocket interface, 1 worker, uvloop

Workloads (load generator: build/wsload from benchmarks/wsload/wsload.c, one
epoll thread; the server is pinned to CPU 0, the generator to CPU 1):
  echo        32 B text and 16 KiB binary messages over 64 and 1,000
              connections; each connection sends the next message when the
              echo of the previous one is back (closed loop). Messages/s is
              echoes received per second; latency is send to echo.
  broadcast   1,000 connections to /broadcast; one of them sends a 32 B text
              message, the server sends it to all 1,000; the next one goes
              when all have it. Messages/s is deliveries per second; latency
              is publish to each delivery.
  memory      10,000 idle connections opened to a freshly started server:
              (server RSS after - RSS before) / connections opened, in bytes.
              RSS is summed over the server's process tree.

The generator reports its own CPU time over each measured window: its CPU %
(near 100 % would make it the bottleneck) and its ceiling, messages per
CPU-second, are in the results beside every number.

Results: benchmarks/results/websockets/README.md and results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import procs, venvs

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "benchmarks" / "apps"
OUT = ROOT / "benchmarks" / "results" / "websockets"
WSLOAD_SRC = ROOT / "benchmarks" / "wsload" / "wsload.c"
WSLOAD = ROOT / "build" / "wsload"
OURS = str(ROOT / ".venv" / "bin" / "python")
SERVER_CPU, CLIENT_CPU = 0, 1


def log(msg: str) -> None:
    print(f"[ws] {msg}", flush=True)


@dataclass
class Spec:
    name: str
    label: str
    venv: str | None  # None: this repo's .venv
    argv: list[str]  # {py} and {port} are replaced
    cwd: Path = ROOT
    dists: tuple[str, ...] = ()


def _uvicorn(module: str) -> list[str]:
    return [
        "{py}", "-m", "uvicorn", f"{module}:app", "--host", "127.0.0.1", "--port", "{port}",
        "--ws", "websockets", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning", "--app-dir", str(APPS),
    ]  # fmt: skip


SPECS = [
    Spec(
        "catzilla", "Catzilla (this repo)", None, ["{py}", str(APPS / "catzilla_ws.py"), "{port}"], dists=("catzilla",)
    ),
    Spec(
        "socketify", "socketify", "socketify", ["{py}", str(APPS / "ws_socketify.py"), "{port}"], dists=("socketify",)
    ),
    Spec("uvicorn", "uvicorn + websockets (raw ASGI)", "ws", _uvicorn("ws_asgi"), dists=("uvicorn", "websockets")),
    Spec("fastapi", "FastAPI on uvicorn", "ws", _uvicorn("ws_fastapi"), dists=("fastapi", "uvicorn", "websockets")),
    Spec(
        "granian",
        "Granian (RSGI)",
        "granian",
        [
            "{py}",
            "-m",
            "granian",
            "--interface",
            "rsgi",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "ws_rsgi:app",
        ],
        cwd=APPS,
        dists=("granian",),
    ),
]
BY_NAME = {s.name: s for s in SPECS}


@dataclass
class Load:
    key: str
    label: str
    mode: str
    conns: int
    size: int
    binary: bool


LOADS = [
    Load("echo-32B-64c", "echo 32 B, 64 conns", "echo", 64, 32, False),
    Load("echo-32B-1000c", "echo 32 B, 1,000 conns", "echo", 1000, 32, False),
    Load("echo-16KiB-64c", "echo 16 KiB, 64 conns", "echo", 64, 16384, True),
    Load("echo-16KiB-1000c", "echo 16 KiB, 1,000 conns", "echo", 1000, 16384, True),
    Load("broadcast-1000c", "broadcast 32 B to 1,000", "broadcast", 1000, 32, False),
]


def pinned(cmd: list[str], cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if shutil.which("taskset") else cmd


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ensure_wsload() -> Path:
    if not WSLOAD.exists() or WSLOAD.stat().st_mtime < WSLOAD_SRC.stat().st_mtime:
        WSLOAD.parent.mkdir(parents=True, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        log(f"building {WSLOAD} ...")
        subprocess.run([cc, "-O2", "-Wall", "-o", str(WSLOAD), str(WSLOAD_SRC)], check=True)
    return WSLOAD


def python_for(spec: Spec) -> str:
    if spec.venv is None:
        return OURS
    return str(venvs.ensure_venv(spec.venv, log=log))


class Server:
    def __init__(self, spec: Spec, python: str) -> None:
        self.spec, self.python = spec, python
        self.port = procs.free_port()
        argv = [a.replace("{py}", python).replace("{port}", str(self.port)) for a in spec.argv]
        self.logfile = ROOT / "build" / "ws-bench" / f"{spec.name}.log"
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "w") as out:
            self.proc = subprocess.Popen(
                pinned(argv, SERVER_CPU), cwd=spec.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while not procs.port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "\n".join(self.logfile.read_text(errors="replace").strip().splitlines()[-12:])
                raise RuntimeError(f"{spec.name} did not start ({' '.join(argv)}):\n{tail}")
            time.sleep(0.05)

    def rss_kb(self) -> int:
        return procs.tree_rss(self.proc.pid)["rss_kb"]

    def cpu(self) -> float:
        total = 0.0
        for p in procs.process_tree(self.proc.pid):
            with contextlib.suppress(OSError):
                total += procs.cpu_seconds(p)
        return total

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(8)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wsload(mode: str, port: int, conns: int, size: int, binary: bool, warmup: float, duration: float) -> dict:
    cmd = [str(WSLOAD), mode, "--port", str(port), "--conns", str(conns), "--size", str(size)]
    cmd += ["--warmup", str(warmup), "--duration", str(duration)] + (["--binary"] if binary else [])
    p = subprocess.run(pinned(cmd, CLIENT_CPU), capture_output=True, text=True, timeout=warmup + duration + 120)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        raise RuntimeError(f"wsload exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return json.loads(lines[-1])


def check(server: Server) -> str | None:
    """One connection, echo of both message kinds, and a broadcast: None if fine, else why not."""
    for size, binary in ((32, False), (16384, True)):
        r = wsload("echo", server.port, 1, size, binary, 0.05, 0.2)
        if not r["opened"]:
            return f"no WebSocket handshake on / (see {server.logfile})"
        if r["bad_len"] or not r["messages"]:
            return f"echo of {size} B: {r['messages']} messages, {r['bad_len']} of the wrong length"
    r = wsload("broadcast", server.port, 4, 32, False, 0.05, 0.2)
    if not r["opened"] or not r["messages"]:
        return f"broadcast: {r['opened']} opened, {r['messages']} delivered"
    return None


def run_load(server: Server, load: Load, warmup: float, duration: float) -> dict:
    c0, t0 = server.cpu(), time.monotonic()
    r = wsload(load.mode, server.port, load.conns, load.size, load.binary, warmup, duration)
    wall = time.monotonic() - t0
    r["server_cpu_pct"] = 100.0 * (server.cpu() - c0) / wall
    r["client_cpu_pct"] = 100.0 * r["client_cpu_s"] / r["seconds"] if r["seconds"] else 0.0
    r["client_ceiling_msgs_per_cpu_s"] = r["messages"] / r["client_cpu_s"] if r["client_cpu_s"] else None
    r["server_alive"] = server.alive()
    return r


def idle_memory(server: Server, conns: int, settle: float) -> dict:
    time.sleep(0.5)
    before = server.rss_kb()
    cmd = pinned([str(WSLOAD), "idle", "--port", str(server.port), "--conns", str(conns)], CLIENT_CPU)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().split()  # READY opened failed seconds
        if not line or line[0] != "READY":
            raise RuntimeError(f"wsload idle: {p.stderr.read()[-300:]}")
        opened, failed, secs = int(line[1]), int(line[2]), float(line[3])
        time.sleep(settle)
        after = server.rss_kb()
    finally:
        p.stdin.close()
        try:
            tail = p.stdout.read()
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            tail = ""
    end = json.loads(tail.strip().splitlines()[-1]) if tail.strip() else {}
    per = (after - before) * 1024 / opened if opened else None
    return {
        "requested": conns,
        "opened": opened,
        "failed": failed,
        "connect_s": secs,
        "open_at_end": end.get("open_at_end"),
        "rss_before_kb": before,
        "rss_after_kb": after,
        "bytes_per_conn": per,
    }


def sysinfo() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}


def fmt_rate(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:,.1f} k" if v >= 1000 else f"{v:,.0f}"


def fmt_ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def write_report(res: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    servers = [s for s in res["servers"]]
    names = [s["name"] for s in servers]
    lines = [
        "# WebSockets: echo, broadcast, memory per idle connection",
        "",
        f"Run {res['date']} by `benchmarks/websocket_bench.py` (`make bench-ws`); {res['system']['cpu']}, "
        f"{res['system']['cpus']} CPUs, Linux {res['system']['kernel']}. Server pinned to CPU {SERVER_CPU}, "
        f"load generator (`build/wsload`, C, one epoll thread) on CPU {CLIENT_CPU}; {res['warmup']} s warm-up, "
        f"{res['duration']} s measured per cell. The client offers no compression.",
        "",
        "Servers: "
        + "; ".join(
            f"**{s['name']}** {s['label']} ({', '.join(f'{k} {v}' for k, v in s['versions'].items())})" for s in servers
        )
        + ".",
        "",
        "## Messages/s (p99 latency, ms)",
        "",
        "| workload | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for load in LOADS:
        row = [load.label]
        for s in servers:
            r = s["loads"].get(load.key)
            if r is None:
                row.append("-")
            elif "error" in r:
                row.append("error")
            else:
                flag = "" if not (r["failed"] or r["bad_len"] or r["closed_by_peer"] or r["timeouts"]) else " ⚠"
                row.append(f"{fmt_rate(r['msgs_per_s'])} ({fmt_ms(r['p99_us'])}){flag}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Memory per idle connection",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    mem_rows = [
        ("connections open", lambda m: f"{m['opened']:,}"),
        ("RSS before (MiB)", lambda m: f"{m['rss_before_kb'] / 1024:.1f}"),
        ("RSS after (MiB)", lambda m: f"{m['rss_after_kb'] / 1024:.1f}"),
        ("**bytes per connection**", lambda m: f"**{m['bytes_per_conn']:,.0f}**" if m["bytes_per_conn"] else "-"),
    ]
    for title, fn in mem_rows:
        cells = []
        for s in servers:
            m = s.get("memory")
            cells.append("-" if not m else ("error" if "error" in m else fn(m)))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The load generator",
        "",
        "Its CPU % over each measured window (100 % would make it the limit) and its ceiling, messages per CPU-second "
        "of the generator (the rate it could drive if the server cost nothing):",
        "",
        "| workload | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for load in LOADS:
        row = [load.label]
        for s in servers:
            r = s["loads"].get(load.key)
            if not r or "error" in r:
                row.append("-")
            else:
                ceil = r.get("client_ceiling_msgs_per_cpu_s")
                row.append(f"{r['client_cpu_pct']:.0f} % / {fmt_rate(ceil)}/s · server {r['server_cpu_pct']:.0f} %")
        lines.append("| " + " | ".join(row) + " |")
    notes = []
    for s in servers:
        if s.get("error"):
            notes.append(f"- **{s['name']}** not measured: {s['error'].splitlines()[0]}")
        for key, r in s["loads"].items():
            if r and "error" in r:
                notes.append(f"- {s['name']} {key}: {r['error']}")
            elif r and (r["failed"] or r["bad_len"] or r["closed_by_peer"] or r["timeouts"]):
                notes.append(
                    f"- ⚠ {s['name']} {key}: {r['failed']} connections failed, {r['closed_by_peer']} closed by the "
                    f"server, {r['bad_len']} messages of the wrong length, {r['timeouts']} broadcast timeouts"
                )
        m = s.get("memory")
        if m and "error" not in m and m["opened"] < m["requested"]:
            notes.append(f"- {s['name']} memory: {m['opened']:,} of {m['requested']:,} connections opened")
        elif m and "error" in m:
            notes.append(f"- {s['name']} memory: {m['error']}")
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", f"File descriptor limit for the servers and the generator: {res['nofile']:,}."]
    (OUT / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default=",".join(BY_NAME), help="comma-separated: " + ", ".join(BY_NAME))
    ap.add_argument("--only", choices=["echo", "broadcast", "memory"], action="append")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the memory measure")
    ap.add_argument(
        "--settle", type=float, default=2.0, help="seconds between opening the idle connections and reading RSS"
    )
    ap.add_argument("--quick", action="store_true", help="1 s windows, 1,000 idle connections")
    args = ap.parse_args(argv)
    if args.quick:
        args.warmup, args.duration, args.idle, args.settle = 0.5, 1.0, 1000, 1.0
    only = set(args.only or ["echo", "broadcast", "memory"])
    nofile = raise_nofile()  # inherited by the servers and the generator
    if args.idle + 64 > nofile:
        log(f"fd limit {nofile}: {args.idle} idle connections need more; using {nofile - 64}")
        args.idle = nofile - 64
    ensure_wsload()
    res = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "system": sysinfo(),
        "warmup": args.warmup,
        "duration": args.duration,
        "nofile": nofile,
        "servers": [],
    }
    for name in [n.strip() for n in args.servers.split(",") if n.strip()]:
        spec = BY_NAME[name]
        entry: dict = {"name": name, "label": spec.label, "versions": {}, "loads": {}}
        res["servers"].append(entry)
        try:
            py = python_for(spec)
            for d in spec.dists:
                entry["versions"][d] = venvs.dist_version(py, d) or "?"
            server = Server(spec, py)
        except Exception as exc:  # a peer that cannot be installed or started is reported, not fatal
            entry["error"] = str(exc)
            log(f"{name}: {exc}")
            write_report(res)
            continue
        try:
            why = check(server)
            if why:
                entry["error"] = f"check failed: {why}"
                log(f"{name}: {entry['error']}")
                continue
            for load in LOADS:
                if load.mode not in only:
                    continue
                try:
                    r = run_load(server, load, args.warmup, args.duration)
                    log(
                        f"{name:9} {load.key:17} {r['msgs_per_s']:>11,.0f} msg/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
                        f"p99 {r['p99_us'] / 1000:7.2f} ms  client {r['client_cpu_pct']:3.0f}%  "
                        f"server {r['server_cpu_pct']:3.0f}%"
                    )
                except Exception as exc:
                    r = {"error": str(exc)}
                    log(f"{name} {load.key}: {exc}")
                entry["loads"][load.key] = r
                if not server.alive():
                    entry["error"] = f"the server exited during {load.key}: see {server.logfile}"
                    break
        finally:
            server.stop()
        if "memory" in only and not entry.get("error"):
            try:
                server = Server(spec, py)  # fresh: the RSS the load left behind is not counted
                try:
                    wsload("echo", server.port, 1, 32, False, 0.05, 0.2)  # code paths warm
                    entry["memory"] = idle_memory(server, args.idle, args.settle)
                    m = entry["memory"]
                    log(
                        f"{name:9} idle x{m['opened']:,}: RSS {m['rss_before_kb'] / 1024:.1f} -> "
                        f"{m['rss_after_kb'] / 1024:.1f} MiB, {m['bytes_per_conn'] or 0:,.0f} B/conn"
                    )
                finally:
                    server.stop()
            except Exception as exc:
                entry["memory"] = {"error": str(exc)}
                log(f"{name} memory: {exc}")
        write_report(res)
    write_report(res)
    log(f"results: {OUT / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
