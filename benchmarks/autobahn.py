"""Autobahn|Testsuite's fuzzingclient against a WebSocket echo server.

    make autobahn                                   # Catzilla (benchmarks/apps/catzilla_ws.py)
    .venv/bin/python -m benchmarks.autobahn --server "CMD ... {port}" --agent NAME --out DIR

The suite (PyPI `autobahntestsuite`) runs only on Python 2.7: it gets its own
virtualenv, build/autobahn/venv, made on demand from a 2.7 interpreter
(pyenv's, else python2.7 on PATH, or --python2) with the versions pinned in
benchmarks/peers/autobahn-py27.txt.

Cases: 1-7 and 9 (framing, pings, reserved bits, opcodes, fragmentation,
UTF-8, closing, limits/performance) without compression, 12-13
(permessage-deflate) with it: the fuzzingclient offers the extension only in
sections 12 and 13, so one run covers both.

The server command is started by the harness with `{port}` replaced by a free
port, and stopped after the run. Summary (counts of OK / NON-STRICT /
INFORMATIONAL / UNIMPLEMENTED / FAILED per section, and every FAILED case with
its reason): OUT/README.md and OUT/results.json; the suite's own HTML and JSON
reports stay in build/autobahn/reports/<agent>/. Exit status 1 if any case
FAILED (or the server could not be run), 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "autobahn"
VENV = BUILD / "venv"
REQUIREMENTS = ROOT / "benchmarks" / "peers" / "autobahn-py27.txt"
VIRTUALENV_PIN = "virtualenv==16.7.12"  # the last virtualenv that is one file, runs on 2.7 and makes 2.7 envs
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "autobahn"
DEFAULT_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "12.*", "13.*"]
BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
SECTIONS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 handling",
    "7": "Close handling",
    "9": "Limits/performance",
    "10": "Misc",
    "12": "permessage-deflate (payloads)",
    "13": "permessage-deflate (parameters)",
}


def log(msg: str) -> None:
    print(f"[autobahn] {msg}", flush=True)


def find_python2(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for cand in sorted(root.glob("2.7*/bin/python2.7"), reverse=True):
        return str(cand)
    return shutil.which("python2.7") or shutil.which("python2")


def run_logged(cmd: list[str], logfile, **kw) -> None:
    logfile.write("$ " + " ".join(map(str, cmd)) + "\n")
    logfile.flush()
    proc = subprocess.run(cmd, stdout=logfile, stderr=subprocess.STDOUT, **kw)
    if proc.returncode:
        raise RuntimeError(f"`{' '.join(map(str, cmd))}` exited {proc.returncode} (log: {logfile.name})")


def ensure_venv(python2: str | None) -> Path:
    """build/autobahn/venv with the pinned suite; rebuilt when the pins change."""
    stamp = VENV / ".installed"
    want = REQUIREMENTS.read_text()
    wstest = VENV / "bin" / "wstest"
    if stamp.exists() and stamp.read_text() == want and wstest.exists():
        return wstest
    py2 = find_python2(python2)
    if not py2:
        raise RuntimeError(
            "no Python 2.7 interpreter (pyenv's versions/2.7*, python2.7 on PATH or --python2): "
            "autobahntestsuite runs only on 2.7"
        )
    BUILD.mkdir(parents=True, exist_ok=True)
    boot = BUILD / "bootstrap"
    log(f"creating {VENV} with {py2} (log: {BUILD / 'venv.log'}) ...")
    with open(BUILD / "venv.log", "w") as out:
        if not (boot / "virtualenv.py").exists():
            run_logged(
                [
                    py2,
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    "--target",
                    str(boot),
                    VIRTUALENV_PIN,
                ],
                out,
                timeout=600,
            )
        if VENV.exists():
            shutil.rmtree(VENV)
        run_logged(
            [py2, "-m", "virtualenv", "-p", py2, str(VENV)],
            out,
            env={**os.environ, "PYTHONPATH": str(boot)},
            timeout=600,
        )
        run_logged(
            [str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
            out,
            timeout=1800,
        )
    stamp.write_text(want)
    return wstest


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(8)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in case_id.split(".") if p.isdigit())


def summarize(reports: Path, agent: str) -> dict:
    index = json.loads((reports / "index.json").read_text())
    cases = index.get(agent) or next(iter(index.values()))
    sections: dict[str, dict[str, int]] = {}
    failed = []
    for case_id in sorted(cases, key=case_key):
        entry = cases[case_id]
        section = case_id.split(".")[0]
        counts = sections.setdefault(section, {b: 0 for b in BEHAVIORS})
        behavior = entry.get("behavior", "?")
        counts[behavior] = counts.get(behavior, 0) + 1
        if behavior == "FAILED" or entry.get("behaviorClose") == "FAILED":
            reason, description = "", ""
            detail = reports / entry.get("reportfile", "")
            if detail.is_file():
                d = json.loads(detail.read_text())
                reason = d.get("result", "")
                if entry.get("behaviorClose") == "FAILED":
                    reason = (reason + " | close: " + d.get("resultClose", "")).strip(" |")
                description = d.get("description", "")
            failed.append(
                {
                    "case": case_id,
                    "behavior": behavior,
                    "behaviorClose": entry.get("behaviorClose"),
                    "remoteCloseCode": entry.get("remoteCloseCode"),
                    "reason": reason,
                    "description": description,
                }
            )
    totals = {b: sum(c.get(b, 0) for c in sections.values()) for b in BEHAVIORS}
    return {"sections": sections, "totals": totals, "failed": failed, "cases": len(cases)}


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_report(out: Path, meta: dict, summary: dict | None, error: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**meta, "summary": summary, "error": error}, indent=2) + "\n")
    lines = [
        "# Autobahn|Testsuite (fuzzingclient)",
        "",
        f"Server: `{meta['agent']}`, started as `{meta['server']}`.",
        f"Suite: autobahntestsuite {meta.get('suite_version') or '?'} on Python 2.7 (pins: "
        "`benchmarks/peers/autobahn-py27.txt`); cases "
        + ", ".join(meta["cases"])
        + " (sections 12 and 13 negotiate permessage-deflate; the others do not offer it).",
        f"Run: {meta['date']}, {meta.get('seconds', 0):.0f} s. Produced by `benchmarks/autobahn.py` (`make autobahn`); "
        "the suite's own HTML/JSON reports are in `build/autobahn/reports/`.",
        "",
    ]
    if error:
        lines += ["## Not run to the end", "", "```", error.strip(), "```", ""]
    if summary:
        lines += ["| section | " + " | ".join(BEHAVIORS) + " |", "|---|" + "---:|" * len(BEHAVIORS)]
        for sec in sorted(summary["sections"], key=int):
            counts = summary["sections"][sec]
            name = f"{sec} {SECTIONS.get(sec, '')}".strip()
            lines.append(f"| {name} | " + " | ".join(str(counts.get(b, 0)) for b in BEHAVIORS) + " |")
        lines.append("| **all** | " + " | ".join(f"**{summary['totals'][b]}**" for b in BEHAVIORS) + " |")
        lines += ["", f"{summary['cases']} cases."]
        if summary["failed"]:
            lines += ["", "## FAILED", "", "| case | close code | reason |", "|---|---:|---|"]
            for f in summary["failed"]:
                reason = one_line(f["reason"]).replace("|", "\\|")
                lines.append(f"| {f['case']} | {f['remoteCloseCode']} | {reason} |")
        else:
            lines += ["", "No case FAILED."]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ours = str(ROOT / ".venv" / "bin" / "python")
    ap.add_argument(
        "--server",
        default=f"{ours} {ROOT / 'benchmarks' / 'apps' / 'catzilla_ws.py'} {{port}}",
        help="command line of the echo server; {port} is replaced by the port (default: the Catzilla echo app)",
    )
    ap.add_argument("--agent", default="catzilla", help="the server's name in the reports")
    ap.add_argument("--path", default="/", help="the echo endpoint's path")
    ap.add_argument("--port", type=int, default=0, help="port for the server (default: a free one)")
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated case patterns")
    ap.add_argument("--exclude", default="", help="comma-separated case patterns to leave out")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where README.md and results.json go")
    ap.add_argument("--python2", help="the Python 2.7 interpreter for the suite's virtualenv")
    ap.add_argument("--startup-timeout", type=float, default=30.0)
    ap.add_argument("--timeout", type=float, default=1800.0, help="the whole suite, seconds")
    args = ap.parse_args(argv)

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    port = args.port or free_port()
    command = args.server.replace("{port}", str(port))
    meta = {
        "agent": args.agent,
        "server": args.server,
        "port": port,
        "cases": cases,
        "exclude": [c for c in args.exclude.split(",") if c],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:
        wstest = ensure_venv(args.python2)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        log(f"cannot install the suite: {exc}")
        write_report(args.out, meta, None, f"The suite could not be installed: {exc}")
        return 1
    ver = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import autobahntestsuite; print(autobahntestsuite.__version__)"],
        capture_output=True,
        text=True,
    )
    meta["suite_version"] = ver.stdout.strip()

    reports = BUILD / "reports" / args.agent
    if reports.exists():
        shutil.rmtree(reports)
    reports.mkdir(parents=True)
    spec = {
        "outdir": str(reports),
        "servers": [{"agent": args.agent, "url": f"ws://127.0.0.1:{port}{args.path}"}],
        "cases": cases,
        "exclude-cases": meta["exclude"],
        "exclude-agent-cases": {},
    }
    spec_file = BUILD / f"fuzzingclient-{args.agent}.json"
    spec_file.write_text(json.dumps(spec, indent=2) + "\n")

    server_log = BUILD / f"server-{args.agent}.log"
    log(f"starting the server: {command}")
    t0 = time.monotonic()
    with open(server_log, "w") as slog:
        server = subprocess.Popen(
            shlex.split(command), cwd=ROOT, stdout=slog, stderr=subprocess.STDOUT, start_new_session=True
        )
    summary, error = None, None
    try:
        if not wait_port(port, server, args.startup_timeout):
            tail = server_log.read_text(errors="replace").strip().splitlines()[-20:]
            status = f"exited with {server.returncode}" if server.poll() is not None else "did not listen"
            error = f"The server {status} (`{command}`). Its last output:\n" + "\n".join(tail)
            log(error)
        else:
            log(f"running the fuzzingclient, cases {', '.join(cases)} (spec {spec_file}) ...")
            with open(BUILD / f"wstest-{args.agent}.log", "w") as wlog:
                proc = subprocess.run(
                    [str(wstest), "-m", "fuzzingclient", "-s", str(spec_file)],
                    cwd=BUILD,
                    stdout=wlog,
                    stderr=subprocess.STDOUT,
                    timeout=args.timeout,
                )
            if not (reports / "index.json").exists():
                error = f"wstest exited {proc.returncode} without a report (log: {wlog.name})"
            else:
                summary = summarize(reports, args.agent)
                if server.poll() is not None:
                    error = f"the server exited ({server.returncode}) during the run: see {server_log}"
    except subprocess.TimeoutExpired:
        error = f"the suite did not finish in {args.timeout:.0f} s"
    finally:
        stop(server)
    meta["seconds"] = time.monotonic() - t0
    write_report(args.out, meta, summary, error)
    if summary:
        width = max(len(b) for b in BEHAVIORS)
        print(f"{'section':<36}" + "".join(f"{b:>{width + 2}}" for b in BEHAVIORS))
        for sec in sorted(summary["sections"], key=int):
            c = summary["sections"][sec]
            print(
                f"{sec + ' ' + SECTIONS.get(sec, ''):<36}" + "".join(f"{c.get(b, 0):>{width + 2}}" for b in BEHAVIORS)
            )
        print(f"{'all':<36}" + "".join(f"{summary['totals'][b]:>{width + 2}}" for b in BEHAVIORS))
        for f in summary["failed"]:
            print(f"FAILED {f['case']}: {one_line(f['reason'], 200)}")
    log(f"summary: {args.out / 'README.md'}")
    if error:
        log(error)
        return 1
    return 1 if summary and summary["totals"]["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
