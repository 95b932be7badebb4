"""Form uploads side by side: many small multipart forms (two fields and a
10 KiB file) posted with wrk, Catzilla against FastAPI with python-multipart
on uvicorn (the `uploads` venv, benchmarks/peers/uploads.txt).

    make bench-uploads                 # ~2 minutes
    python -m benchmarks.uploads --rounds 3 --duration 8

Each round runs every server once, in turn (the machine's speed drifts:
medians over rounds, measured side by side). Server on CPU 0, wrk on CPU 1.
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
from benchmarks.harness.paths import our_python

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "uploads"
BOUNDARY = "----catzillabench"
FILE_BYTES = 10 * 1024

# Both apps answer the same thing: the two fields and the file's size.
APPS = {
    "catzilla": """
        from typing import Annotated
        from catzilla import Catzilla, File, Form, UploadFile
        app = Catzilla(production=True)

        @app.post("/form")
        async def form(name: Annotated[str, Form()], tag: Annotated[str, Form()], file: UploadFile):
            return {"name": name, "tag": tag, "size": file.size}

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

        uvicorn.run(app, port=int(PORT), log_level="error", access_log=False)
    """,
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
    return our_python() if server == "catzilla" else str(venvs.ensure_venv("uploads"))


def start(server: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = procs.free_port()
    script = workdir / f"{server}_app.py"
    script.write_text(f"PORT = {port}\n" + textwrap.dedent(APPS[server]))
    cmd = [python_for(server), str(script)]
    if subprocess.run(["which", "taskset"], capture_output=True).returncode == 0:
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))
    deadline = time.monotonic() + 30
    while not procs.port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{server} did not start")
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.uploads", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args(argv)
    payload = body()
    rps: dict[str, list[float]] = {name: [] for name in APPS}
    p99: dict[str, list[float]] = {name: [] for name in APPS}
    with tempfile.TemporaryDirectory(prefix="cz-bench-uploads-") as tmp:
        workdir = Path(tmp)
        script = lua_script(workdir, payload)
        for rnd in range(args.rounds):
            for name in APPS:
                proc, port = start(name, workdir)
                try:
                    check(port, payload)
                    res = wrk.run_wrk(
                        f"http://127.0.0.1:{port}/form",
                        duration=args.duration,
                        connections=args.connections,
                        script=script,
                    )
                finally:
                    proc.terminate()
                    proc.wait(10)
                if res.non_2xx or res.returncode:
                    raise RuntimeError(f"{name}: wrk said {res.raw[-400:]}")
                rps[name].append(res.rps)
                p99[name].append(res.p99_ms or 0.0)
                print(f"round {rnd + 1} {name:9} {res.rps:10.0f} req/s  p99 {res.p99_ms} ms", flush=True)
    med = {name: statistics.median(v) for name, v in rps.items()}
    out = {
        "workload": f"multipart form: 2 fields + a {FILE_BYTES // 1024} KiB file, {len(payload)} bytes",
        "connections": args.connections,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "rps": rps,
        "p99_ms": p99,
        "median_rps": med,
        "ratio_catzilla_vs_fastapi": med["catzilla"] / med["fastapi"],
        "cpu": os.cpu_count(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"median_rps": med, "ratio": round(out["ratio_catzilla_vs_fastapi"], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
