"""Recycling: a leaking handler's worker replaced on --workers-max-rss, under load.

    .venv/bin/python benchmarks/recycle.py [--limit 200] [--leak-kib 16] [--seconds 10] [--out benchmarks/results]

`catzilla run --workers 2 --workers-max-rss LIMIT` serves a handler that
keeps LEAK KiB per request (touched pages). wrk (-c16) runs for --seconds;
meanwhile every worker's RSS is read from /proc every 10 ms. Reported: the
replacements, the highest RSS any worker reached (goal: below the limit + 10%)
and failed requests (wrk's socket errors and non-2xx; goal 0). Writes
recycle.json and recycle.md. Linux only (/proc); needs wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.reload import ROOT, Server, free_port, wrk_errors

APP = """
from catzilla import Catzilla
app = Catzilla(production=True)
LEAK = []

@app.get("/")
def leak():
    LEAK.append(b"x" * ({leak_kib} * 1024))
    return "ok"
"""

PAGE = os.sysconf("SC_PAGE_SIZE")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def rss_mib(pid: int) -> float | None:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / (1 << 20)
    except (OSError, ValueError, IndexError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=float, default=200.0, help="--workers-max-rss (MiB)")
    ap.add_argument("--leak-kib", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    if shutil.which("wrk") is None or not os.path.isdir("/proc/self"):
        print("needs wrk and /proc", file=sys.stderr)
        return 2
    app_dir = Path(tempfile.mkdtemp(prefix="cz-recycle-"))
    (app_dir / "leaky_app.py").write_text(APP.format(leak_kib=args.leak_kib))
    port = free_port()
    server = Server(
        app_dir,
        ["leaky_app:app", "--port", str(port), "--workers", str(args.workers), "--workers-max-rss", str(args.limit)],
    )
    peak: dict[int, float] = {}
    try:
        server.wait_for(r"serving\s+http://")
        time.sleep(0.5)
        wrk = subprocess.Popen(
            ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", f"http://127.0.0.1:{port}/"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        while wrk.poll() is None:
            for pid in children(server.proc.pid):
                mib = rss_mib(pid)
                if mib is not None:
                    peak[pid] = max(peak.get(pid, 0.0), mib)
            time.sleep(0.01)
        output = wrk.stdout.read() if wrk.stdout else ""
    finally:
        server.stop()
    errors = wrk_errors(output)
    failed = sum(v for k, v in errors.items() if k != "requests")
    replaced = re.findall(r"catzilla: worker (\d+) replaced by worker (\d+) \(max RSS: ([\d.]+) MiB", server.text())
    highest = max(peak.values()) if peak else 0.0
    result = {
        "limit_mib": args.limit,
        "leak_kib_per_request": args.leak_kib,
        "workers": args.workers,
        "seconds": args.seconds,
        "requests": errors["requests"],
        "failed_requests": failed,
        "errors": errors,
        "replacements": len(replaced),
        "rss_at_trigger_mib": [float(r[2]) for r in replaced],
        "highest_worker_rss_mib": round(highest, 1),
        "highest_over_limit_percent": round(100.0 * (highest - args.limit) / args.limit, 1),
        "wrk": output,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recycle.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Recycling on --workers-max-rss",
        "",
        f"`catzilla run --workers {args.workers} --workers-max-rss {args.limit:g}`, a handler keeping "
        f"{args.leak_kib} KiB per request, `wrk -t2 -c{args.connections} -d{args.seconds}s`; "
        "workers' RSS read from /proc every 10 ms.",
        "",
        "| requests | failed | replacements | highest worker RSS (MiB) | over the limit |",
        "|---|---|---|---|---|",
        f"| {errors['requests']} | {failed} | {len(replaced)} | {highest:.1f} "
        f"| {result['highest_over_limit_percent']:+.1f}% |",
        "",
        "Command: `python -m benchmarks.recycle " + " ".join(sys.argv[1:]) + "`",
        "",
    ]
    (args.out / "recycle.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
