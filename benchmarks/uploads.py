"""Form uploads side by side: many small multipart forms (two fields and a
10 KiB file) posted with wrk, Catzilla against FastAPI with python-multipart
on uvicorn (the `uploads` venv, benchmarks/peers/uploads.txt) and against
catzilla 0.2.3's upload system (the `catzilla023` venv,
benchmarks/apps/catzilla_023_uploads.py).

    make bench-uploads                 # ~2 minutes
    python -m benchmarks.uploads --rounds 3 --duration 8

Each round runs every server once, in turn (the machine's speed drifts:
medians over rounds, measured side by side). Server on CPU 0, wrk on CPU 1.
Every server's answer is checked before it is timed; one that cannot start
or answers wrong is reported as not supported, with the reason.
Results: benchmarks/results/uploads/results.json and README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

from benchmarks.harness import procs, venvs, wrk
from benchmarks.harness.paths import APPS as APP_DIR
from benchmarks.harness.paths import our_python

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "uploads"
BOUNDARY = "----catzillabench"
FILE_BYTES = 10 * 1024

# Every app answers the same thing: the two fields and the file's size.
# Inline apps get `PORT = <port>` prepended; catzilla 0.2.3 is a file in
# benchmarks/apps taking the port as its argument.
APPS = {
    "catzilla": """
        from typing import Annotated
        from catzilla import Catzilla, File, Form, UploadFile
        app = Catzilla(production=True)

        @app.post("/form")
        async def form(name: Annotated[str, Form()], tag: Annotated[str, Form()], file: UploadFile):
            return {"name": name, "tag": tag, "size": file.size}

        @app.post("/big", max_body_size=4 << 30)
        async def big(file: UploadFile):
            n = 0
            while chunk := await file.read(1 << 20):
                n += len(chunk)
            return {"size": n}

        app.listen(port=int(PORT))
    """,
    "fastapi": """
        from typing import Annotated
        import uvicorn
        from fastapi import FastAPI, File, Form, UploadFile
        app = FastAPI()

        @app.post("/form")
        async def form(name: Annotated[str, Form()], tag: Annotated[str, Form()], file: UploadFile):
            return {"name": name, "tag": tag, "size": file.size}

        @app.post("/big")
        async def big(file: UploadFile):
            n = 0
            while chunk := await file.read(1 << 20):
                n += len(chunk)
            return {"size": n}

        uvicorn.run(app, port=int(PORT), log_level="error", access_log=False)
    """,
    "catzilla-0.2.3": APP_DIR / "catzilla_023_uploads.py",
}
VENVS = {"fastapi": "uploads", "catzilla-0.2.3": "catzilla023"}
SINK_NAME = "sink"
LABELS = {
    SINK_NAME: "(client ceiling: a socket that reads and discards the body)",
    "catzilla": "Catzilla (multipart parsed in C, `UploadFile`)",
    "catzilla-0.2.3": "catzilla 0.2.3 (its C multipart parser, `Form()` and `File()`)",
}


def body() -> bytes:
    data = (b"0123456789abcdef" * (FILE_BYTES // 16))[:FILE_BYTES]
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nalice\r\n'.encode(),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="tag"\r\n\r\nbench\r\n'.encode(),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n",
        f"--{BOUNDARY}--\r\n".encode(),
    ]
    return b"".join(parts)


def lua_script(directory: Path, payload: bytes) -> Path:
    """A wrk script posting `payload` byte for byte: a quoted Lua string with
    decimal escapes (a long string would turn each CRLF into LF)."""
    text = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in payload)
    path = directory / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n'
        f'wrk.body = "{text}"\n'
    )
    return path


def python_for(server: str) -> str:
    return our_python() if server == "catzilla" else str(venvs.ensure_venv(VENVS[server]))


def start(server: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = procs.free_port()
    app = APPS[server]
    if isinstance(app, Path):
        cmd = [python_for(server), str(app), str(port)]
    else:
        script = workdir / f"{server}_app.py"
        script.write_text(f"PORT = {port}\n" + textwrap.dedent(app))
        cmd = [python_for(server), str(script)]
    if subprocess.run(["which", "taskset"], capture_output=True).returncode == 0:
        cmd = ["taskset", "-c", "0", *cmd]
    # Temporary files (catzilla 0.2.3 writes each upload to one) stay in the
    # run's own directory.
    env = {**os.environ, "TMPDIR": str(workdir)}
    log = workdir / f"{server}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=str(ROOT), env=env)
    deadline = time.monotonic() + 30
    while not procs.port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{server} did not start" + (": " + " / ".join(tail) if tail else ""))
        time.sleep(0.05)
    return proc, port


def check(port: int, payload: bytes) -> None:
    """The answer is right before it is timed."""
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/form",
        data=payload,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        got = json.loads(r.read())
    assert got == {"name": "alice", "tag": "bench", "size": FILE_BYTES}, got


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def big_upload(name: str, workdir: Path, big: Path) -> dict[str, float] | str:
    """One upload of `big` (a file part, sent by curl as it reads the file) to
    /big, which reads the UploadFile back: MiB/s, and the server's RSS growth
    (its peak during the upload minus its RSS before)."""
    proc, port = start(name, workdir)
    try:
        before = rss_kib(proc.pid, "VmRSS")
        t0 = time.monotonic()
        r = subprocess.run(
            ["curl", "-s", "--max-time", "600", "-F", f"file=@{big}", f"http://127.0.0.1:{port}/big"],
            capture_output=True,
        )
        elapsed = time.monotonic() - t0
        peak = rss_kib(proc.pid, "VmHWM")
        try:
            got = json.loads(r.stdout)
        except ValueError:
            return f"answered {r.stdout[:120]!r} (curl exit {r.returncode})"
        if got.get("size") != big.stat().st_size:
            return f"answered {got!r}"
        mib = big.stat().st_size / (1 << 20)
        return {"seconds": elapsed, "mib_per_s": mib / elapsed, "rss_growth_mib": (peak - before) / 1024}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# What the client can send at most: a server that reads the body and throws
# it away (no HTTP framework, no multipart parsing, no disk), on the same CPU.
SINK = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
buf = memoryview(bytearray(1 << 20))
while True:
    c, _ = s.accept()
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        chunk = c.recv(65536)
        if not chunk:
            break
        head += chunk
    head, _, rest = head.partition(b"\\r\\n\\r\\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\\r\\n")[1:] if b":" in line)
    length = int(fields.get(b"Content-Length", b"0"))
    if b"100-continue" in fields.get(b"Expect", b"").lower():
        c.sendall(b"HTTP/1.1 100 Continue\\r\\n\\r\\n")
    n = len(rest)
    while n < length and (k := c.recv_into(buf)):
        n += k
    body = b'{"size": -1}'
    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s" % (len(body), body))
    c.close()
"""


def sink_upload(workdir: Path, big: Path) -> dict[str, float]:
    """The same curl upload to SINK: the client's ceiling on this machine."""
    port = procs.free_port()
    script = workdir / "sink.py"
    script.write_text(SINK)
    cmd = [our_python(), str(script), str(port)]
    if subprocess.run(["which", "taskset"], capture_output=True).returncode == 0:
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not procs.port_open(port):
            if time.monotonic() > deadline:
                raise RuntimeError("the sink did not start")
            time.sleep(0.05)
        t0 = time.monotonic()
        subprocess.run(
            ["curl", "-s", "-F", f"file=@{big}", f"http://127.0.0.1:{port}/"], capture_output=True, check=True
        )
        elapsed = time.monotonic() - t0
        return {"seconds": elapsed, "mib_per_s": big.stat().st_size / (1 << 20) / elapsed}
    finally:
        proc.kill()
        proc.wait(5)


def fastapi_label() -> str:
    py = python_for("fastapi")
    v = {d: venvs.dist_version(py, d) or "?" for d in ("fastapi", "python-multipart", "uvicorn")}
    return f"FastAPI {v['fastapi']} + python-multipart {v['python-multipart']} on uvicorn {v['uvicorn']}"


def readme(out: dict) -> str:
    lines = [
        "# Form uploads",
        "",
        "`make bench-uploads` (`benchmarks/uploads.py`): many small `multipart/form-data`",
        f"forms, two fields and a {FILE_BYTES // 1024} KiB file ({out['body_bytes'] / 1000:.1f} KB per request), "
        f"posted by wrk with {out['connections']}",
        f"connections for {out['duration_s']:g} s; server on CPU 0, wrk on CPU 1, one process each. "
        f"{out['rounds']} rounds, each",
        f"running every server once in turn; medians over the rounds. {out['cpu']} cores "
        f"(load average at the end: {', '.join(map(str, out.get('load_average_at_end', [])))}).",
        "",
        "| server | req/s (median) | p99 ms (per round) |",
        "|---|---|---|",
    ]
    for name, label in out["servers"].items():
        if name == SINK_NAME:
            continue
        if name in out["unsupported"]:
            lines.append(f"| {label} | not supported: {out['unsupported'][name]} | |")
            continue
        p99 = ", ".join(f"{v:.1f}" for v in out["p99_ms"][name])
        lines.append(f"| {label} | {out['median_rps'][name]:,.0f} | {p99} |")
    lines.append("")
    ours = out["median_rps"].get("catzilla")
    ratios = [
        f"Catzilla / {short}: **{ours / out['median_rps'][name]:.2f}x**"
        for name, short in (("fastapi", "FastAPI"), ("catzilla-0.2.3", "catzilla 0.2.3"))
        if ours and out["median_rps"].get(name)
    ]
    if ratios:
        lines += ["; ".join(ratios) + ". Raw figures: `results.json`.", ""]
    lines += [
        "Each app answers the two fields and the file's size (checked before it is timed). "
        "catzilla 0.2.3 (`benchmarks/apps/catzilla_023_uploads.py`) parses the form in C, then writes "
        "each file to a temporary file for its `UploadFile` (removed when the object is collected).",
        "",
    ]
    if out.get("big"):
        lines += [
            "",
            f"## One {out['big_bytes'] >> 30} GiB file",
            "",
            "One upload of a file of random bytes (curl `-F file=@...`, sent as it is read), to a route "
            "whose handler reads the `UploadFile` back in 1 MiB pieces; server RSS growth is its peak during "
            f"the upload minus its RSS before. {out['rounds']} rounds, every server once per round; medians.",
            "",
            "| server | MiB/s | s | server RSS growth (MiB) |",
            "|---|---|---|---|",
        ]
        for name, r in out["big"].items():
            label = out["servers"][name]
            if isinstance(r, str):
                lines.append(f"| {label} | not supported: {r} | | |")
            else:
                growth = f"{r['rss_growth_mib']:.1f}" if "rss_growth_mib" in r else ""
                lines.append(f"| {label} | {r['mib_per_s']:,.0f} | {r['seconds']:.2f} | {growth} |")
        ours = out["big"].get("catzilla")
        peers = [(n, r) for n, r in out["big"].items() if n not in ("catzilla", SINK_NAME) and isinstance(r, dict)]
        sink = out["big"].get(SINK_NAME)
        if isinstance(ours, dict) and peers:
            best = max(peers, key=lambda nr: nr[1]["mib_per_s"])
            said = f"Catzilla / fastest peer ({best[0]}): **{ours['mib_per_s'] / best[1]['mib_per_s']:.2f}x**"
            if isinstance(sink, dict):
                said += (
                    f"; the client's ceiling / that peer: {sink['mib_per_s'] / best[1]['mib_per_s']:.2f}x "
                    f"(no server can go faster than curl sends); Catzilla / ceiling: "
                    f"{ours['mib_per_s'] / sink['mib_per_s']:.2f}x"
                )
            lines += ["", said + "."]

    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.uploads", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the one big upload (0: skip)")
    args = ap.parse_args(argv)
    payload = body()
    big_results: dict[str, dict[str, float] | str] = {}
    rps: dict[str, list[float]] = {name: [] for name in APPS}
    p99: dict[str, list[float]] = {name: [] for name in APPS}
    unsupported: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="cz-bench-uploads-") as tmp:
        workdir = Path(tmp)
        script = lua_script(workdir, payload)
        for rnd in range(args.rounds):
            for name in APPS:
                if name in unsupported:
                    continue
                try:
                    proc, port = start(name, workdir)
                except (RuntimeError, venvs.VenvError) as exc:
                    if name == "catzilla":
                        raise
                    unsupported[name] = str(exc)
                    continue
                try:
                    try:
                        check(port, payload)
                    except Exception as exc:
                        if name == "catzilla":
                            raise
                        unsupported[name] = f"the form's answer is wrong: {exc!r}"[:300]
                        continue
                    res = wrk.run_wrk(
                        f"http://127.0.0.1:{port}/form",
                        duration=args.duration,
                        connections=args.connections,
                        script=script,
                    )
                finally:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
                if not res.valid:
                    if name == "catzilla":
                        raise RuntimeError(f"{name}: wrk said {res.raw[-400:]}")
                    unsupported[name] = f"under load: {res.problems()}"
                    continue
                rps[name].append(res.rps)
                p99[name].append(res.p99_ms or 0.0)
                print(f"round {rnd + 1} {name:14} {res.rps:10.0f} req/s  p99 {res.p99_ms} ms", flush=True)
        if args.big_mib:
            big = workdir / "big.bin"
            with open(big, "wb") as f:  # random bytes: a CR every 256 bytes, as in real files
                for _ in range(args.big_mib):
                    f.write(os.urandom(1 << 20))
            runs: dict[str, list[dict[str, float] | str]] = {name: [] for name in [*APPS, SINK_NAME]}
            for rnd in range(args.rounds):  # in turn, each round: the machine's swings hit every server alike
                for name in runs:
                    try:
                        got = sink_upload(workdir, big) if name == SINK_NAME else big_upload(name, workdir, big)
                    except (RuntimeError, venvs.VenvError, subprocess.CalledProcessError) as exc:
                        got = str(exc)[:300]
                    runs[name].append(got)
                    print(f"big upload, round {rnd + 1}: {name:14} {got}", flush=True)
            for name, results in runs.items():
                done = [r for r in results if isinstance(r, dict)]
                if not done:
                    big_results[name] = next(r for r in results if isinstance(r, str))
                    continue
                big_results[name] = {key: statistics.median(r[key] for r in done) for key in done[0]} | {
                    "rounds": len(done)
                }
            big.unlink()
    med = {name: statistics.median(v) for name, v in rps.items() if v and name not in unsupported}
    out = {
        "workload": f"multipart form: 2 fields + a {FILE_BYTES // 1024} KiB file, {len(payload)} bytes",
        "body_bytes": len(payload),
        "connections": args.connections,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "servers": {name: fastapi_label() if name == "fastapi" else LABELS[name] for name in [*APPS, SINK_NAME]},
        "rps": rps,
        "p99_ms": p99,
        "median_rps": med,
        "unsupported": unsupported,
        "ratio_catzilla_vs_fastapi": med["catzilla"] / med["fastapi"] if "fastapi" in med else None,
        "ratio_catzilla_vs_catzilla_023": (
            med["catzilla"] / med["catzilla-0.2.3"] if "catzilla-0.2.3" in med else None
        ),
        "cpu": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "big_bytes": args.big_mib << 20,
        "big": big_results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "README.md").write_text(readme(out))
    print(readme(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
