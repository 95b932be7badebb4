"""Reload under load: failed requests during SIGHUP rolling restarts under wrk.

    .venv/bin/python benchmarks/reload.py [--reloads 10] [--connections 64] [--workers 2] [--out benchmarks/results]

`catzilla run` serves a hello-world app with --workers N; wrk (-c64) runs,
with keep-alive connections and then with a new connection per request,
while the supervisor gets --reloads SIGHUPs, each sent once the previous
restart has replaced every worker. Failed requests: wrk's socket errors
(connect, read, write, timeout) plus non-2xx answers. Writes reload.json
and reload.md. Not part of `make test` (needs wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

APP = """
from catzilla import Catzilla
app = Catzilla(production=True)

@app.get("/")
def hello():
    return {"message": "hello"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m catzilla run` in its own session, its stderr collected."""

    def __init__(self, app_dir: Path, args: list[str]) -> None:
        env = dict(os.environ)  # the installed catzilla (make build/.installed), or the PYTHONPATH given
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "catzilla", "run", *args],
            cwd=str(app_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def text(self) -> str:
        with self.cond:
            return "".join(self.lines)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 30.0) -> None:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(rx.findall("".join(self.lines))) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"{pattern!r} x{count}: {''.join(self.lines)[-2000:]}")
                self.cond.wait(min(left, 0.1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wrk_errors(output: str) -> dict[str, int]:
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0, "requests": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        errors.update(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if m:
        errors["non2xx"] = int(m.group(1))
    m = re.search(r"(\d+) requests in", output)
    if m:
        errors["requests"] = int(m.group(1))
    return errors


MODES = {"keep-alive": [], "connection per request": ["-H", "Connection: close"]}


def under_load(args: argparse.Namespace, app_dir: Path, wrk_flags: list[str]) -> dict[str, object]:
    """One server, wrk with ``wrk_flags`` and ``args.reloads`` SIGHUPs: what wrk counted."""
    port = free_port()
    server = Server(app_dir, ["hello_app:app", "--port", str(port), "--workers", str(args.workers)])
    try:
        server.wait_for(r"serving\s+http://")
        time.sleep(0.5)
        duration = max(5, args.reloads * 2 + 3)
        wrk = subprocess.Popen(
            [
                "wrk",
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{duration}s",
                *wrk_flags,
                f"http://127.0.0.1:{port}/",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(1.0)
        took: list[float] = []
        for n in range(1, args.reloads + 1):
            t0 = time.monotonic()
            os.kill(server.proc.pid, signal.SIGHUP)
            server.wait_for(r"replaced by worker \d+ \(SIGHUP\)", count=n * args.workers)
            took.append(time.monotonic() - t0)
            time.sleep(0.3)
        output, _ = wrk.communicate(timeout=duration + 30)
    finally:
        server.stop()
    errors = wrk_errors(output)
    return {
        "duration_s": duration,
        "restart_seconds": [round(t, 3) for t in took],
        "requests": errors["requests"],
        "failed_requests": sum(v for k, v in errors.items() if k != "requests"),
        "errors": errors,
        "wrk": output,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    app_dir = Path(tempfile.mkdtemp(prefix="cz-reload-"))
    (app_dir / "hello_app.py").write_text(APP)
    runs = {mode: under_load(args, app_dir, flags) for mode, flags in MODES.items()}
    result = {"reloads": args.reloads, "workers": args.workers, "connections": args.connections, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reload.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Reload under load",
        "",
        f"`catzilla run --workers {args.workers}`, `wrk -t{args.threads} -c{args.connections}`, "
        f"{args.reloads} SIGHUP rolling restarts (each waits for the previous one to have replaced every worker); "
        "once with keep-alive connections, once with a new connection per request (`Connection: close`).",
        "",
        "| connections | requests | failed | connect | read | write | timeout | non-2xx | restart (median s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, run in runs.items():
        e: dict[str, int] = run["errors"]  # type: ignore[assignment]
        took: list[float] = run["restart_seconds"]  # type: ignore[assignment]
        md.append(
            f"| {mode} | {e['requests']} | {run['failed_requests']} | {e['connect']} | {e['read']} | {e['write']} "
            f"| {e['timeout']} | {e['non2xx']} | {sorted(took)[len(took) // 2]:.2f} |"
        )
    md += ["", "Command: `python benchmarks/reload.py " + " ".join(sys.argv[1:]) + "`", ""]
    (args.out / "reload.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
