"""Soak test: a million mixed requests per allocator; RSS and allocated over time.

    .venv/bin/python benchmarks/soak.py [--requests 1000000] [--out benchmarks/results]

For each allocator (jemalloc, malloc) a Catzilla server runs in its own
process. Client processes send, over keep-alive connections and pipelined:
good requests, large POST bodies (16-512 KiB), handler exceptions (500),
unknown paths (404) and malformed requests (400, connection closed); a
slow-client thread trickles requests byte by byte. Every response's status is
checked against what its request must get. RSS (/proc) and the memory
layer's allocated bytes are sampled every 10,000 requests. Writes
soak.json, soak.md and (with matplotlib) soak.png. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_EVERY = 10_000
PIPELINE = 16
CLIENTS = 2

APP = """
import sys
from catzilla import Catzilla, Request
app = Catzilla(use_jemalloc={use_jemalloc}, production=True)

@app.get("/ok")
def ok():
    return {{"ok": True}}

@app.post("/echo")
def echo(request: Request):
    return {{"size": len(request.body)}}

@app.get("/boom")
def boom():
    raise RuntimeError("soak")

@app.get("/stats")
def stats():
    s = app.get_memory_stats()
    return {{"allocated_bytes": s["allocated_bytes"], "resident_mb": s["resident_mb"]}}

app.listen(port={port}, max_body_size=1 << 20, keepalive_timeout=30)
"""

# (weight, kind); each kind knows its request bytes and the status it must get.
MIX = [(70, "ok"), (10, "big"), (8, "boom"), (7, "missing"), (5, "malformed")]


def request(kind: str, rng: random.Random) -> tuple[bytes, int, bool]:
    """Bytes, expected status, and whether the server closes after it."""
    if kind == "ok":
        return b"GET /ok HTTP/1.1\r\nHost: s\r\n\r\n", 200, False
    if kind == "big":
        n = rng.choice((16, 64, 256, 512)) * 1024
        return (b"POST /echo HTTP/1.1\r\nHost: s\r\nContent-Length: %d\r\n\r\n" % n) + b"x" * n, 200, False
    if kind == "boom":
        return b"GET /boom HTTP/1.1\r\nHost: s\r\n\r\n", 500, False
    if kind == "missing":
        return b"GET /nope HTTP/1.1\r\nHost: s\r\n\r\n", 404, False
    junk = rng.choice(
        [
            b"GET / HTTP/1.1\r\nHost: s\r\nBad Header: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"\x00\x01\x02garbage\r\n\r\n",
        ]
    )
    return junk, 400, True


def read_responses(sock: socket.socket, buf: bytearray, n: int) -> list[int]:
    statuses: list[int] = []
    while len(statuses) < n:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if len(buf) >= end + 4 + length:
                statuses.append(int(head[0].split()[1]))
                del buf[: end + 4 + length]
                continue
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf.extend(chunk)
    return statuses


def client(port: int, count: int, seed: int, progress: mp.Value, bad: mp.Value) -> None:
    rng = random.Random(seed)
    kinds = [k for w, k in MIX for _ in range(w)]
    sock, buf, sent = None, bytearray(), 0
    while sent < count:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port))
            buf.clear()
        batch, expected, closes = [], [], False
        while len(batch) < PIPELINE and sent + len(batch) < count and not closes:
            data, status, closes = request(rng.choice(kinds), rng)
            batch.append(data)
            expected.append(status)
        sock.sendall(b"".join(batch))
        got = read_responses(sock, buf, len(batch))
        if got != expected:
            with bad.get_lock():
                bad.value += sum(1 for i, s in enumerate(expected) if i >= len(got) or got[i] != s)
        sent += len(batch)
        with progress.get_lock():
            progress.value += len(batch)
        if closes:
            sock.close()
            sock = None


def slow_clients(port: int, stop: threading.Event, bad: list[int]) -> None:
    """Requests sent a few bytes at a time, then answered normally."""
    req = b"GET /ok HTTP/1.1\r\nHost: s\r\n\r\n"
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port)) as s:
                for i in range(0, len(req), 4):
                    s.sendall(req[i : i + 4])
                    time.sleep(0.05)
                if read_responses(s, bytearray(), 1) != [200] and not stop.is_set():
                    bad[0] += 1
        except OSError:
            if not stop.is_set():
                bad[0] += 1


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(use_jemalloc: bool, total: int, port: int) -> dict:
    code = APP.format(use_jemalloc=use_jemalloc, port=port)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    progress, bad = mp.Value("q", 0), mp.Value("q", 0)
    workers = [mp.Process(target=client, args=(port, total // CLIENTS, i, progress, bad)) for i in range(CLIENTS)]
    stop, slow_bad = threading.Event(), [0]
    slow = threading.Thread(target=slow_clients, args=(port, stop, slow_bad), daemon=True)
    start = time.time()
    for w in workers:
        w.start()
    slow.start()
    samples, next_at = [], 0
    while any(w.is_alive() for w in workers) or next_at <= progress.value:
        done = progress.value
        if done >= next_at:
            stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats"))
            samples.append(
                {
                    "requests": done,
                    "seconds": round(time.time() - start, 2),
                    "rss_kb": rss_kb(proc.pid),
                    "allocated_bytes": stats["allocated_bytes"],
                }
            )
            next_at = (done // SAMPLE_EVERY + 1) * SAMPLE_EVERY
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.time() - start
    crashed = proc.poll() is not None
    proc.send_signal(2)
    code_at_exit = proc.wait(timeout=30)
    at_100k = next(s for s in samples if s["requests"] >= min(100_000, total // 10))
    last = samples[-1]
    return {
        "allocator": "jemalloc" if use_jemalloc else "malloc",
        "requests": progress.value,
        "seconds": round(elapsed, 1),
        "requests_per_second": round(progress.value / elapsed),
        "unexpected_statuses": bad.value + slow_bad[0],
        "crashed": crashed,
        "exit_code": code_at_exit,
        "rss_kb_at_100k": at_100k["rss_kb"],
        "rss_kb_at_end": last["rss_kb"],
        "rss_growth_kb": last["rss_kb"] - at_100k["rss_kb"],
        "allocated_bytes_at_end": last["allocated_bytes"],
        "samples": samples,
    }


def report(results: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(results, indent=1))
    lines = [
        "# Soak test",
        "",
        f"`benchmarks/soak.py`, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores. Mixed requests: "
        "70% small GET, 10% POST 16-512 KiB, 8% handler exceptions, 7% 404, 5% malformed; "
        "plus a slow client trickling requests. Target: RSS growth under 2 MB between the 100k-th "
        "and the last request, no crash, no unexpected status.",
        "",
        "| allocator | requests | req/s | RSS at 100k | RSS at end | growth | allocated at end | unexpected statuses "
        "| crashed | exit code |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['allocator']} | {r['requests']:,} | {r['requests_per_second']:,} "
            f"| {r['rss_kb_at_100k'] / 1024:.1f} MiB | {r['rss_kb_at_end'] / 1024:.1f} MiB "
            f"| {r['rss_growth_kb'] / 1024:+.2f} MiB | {r['allocated_bytes_at_end']:,} B "
            f"| {r['unexpected_statuses']} | {r['crashed']} | {r['exit_code']} |"
        )
    ok = all(r["rss_growth_kb"] < 2048 and not r["crashed"] and r["unexpected_statuses"] == 0 for r in results)
    lines += ["", f"Target met: **{'yes' if ok else 'no'}**.", "", "![soak](soak.png)", ""]
    (out / "soak.md").write_text("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no soak.png", file=sys.stderr)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        xs = [s["requests"] / 1000 for s in r["samples"]]
        a.plot(xs, [s["rss_kb"] / 1024 for s in r["samples"]], label=r["allocator"])
        b.plot(xs, [s["allocated_bytes"] / 1024 for s in r["samples"]], label=r["allocator"])
    a.set(title="Server RSS", xlabel="requests (thousands)", ylabel="MiB")
    b.set(title="Memory layer: allocated", xlabel="requests (thousands)", ylabel="KiB")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args()
    results = [soak(use, args.requests, args.port) for use in (True, False)]
    for r in results:
        print({k: v for k, v in r.items() if k != "samples"})
    report(results, args.out)
    return 0 if all(not r["crashed"] and r["unexpected_statuses"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
