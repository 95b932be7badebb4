"""Running wrk and reading its report.

wrk runs pinned to its own CPU (taskset), -t1 by default, with --latency for
the percentiles. POST bodies go through a generated Lua script. wrk counts
socket errors (connect/read/write/timeout) and responses with status >= 400
("Non-2xx or 3xx"); the harness also checks every server's status and bytes
before it is measured. A run with any error or non-2xx is invalid.
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNITS_B = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"bad duration {text!r}")
    return float(m.group(1)) * _UNITS_S[m.group(2)] * 1000.0


def _bytes(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([KMGT]?B)", text.strip())
    return float(m.group(1)) * _UNITS_B[m.group(2)] if m else math.nan


@dataclass
class WrkResult:
    command: str
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    transfer_bytes_per_s: float = 0.0
    read_bytes: float = 0.0
    latency_avg_ms: float | None = None
    latency_max_ms: float | None = None
    p50_ms: float | None = None
    p75_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    errors: dict[str, int] = field(default_factory=lambda: {"connect": 0, "read": 0, "write": 0, "timeout": 0})
    non_2xx: int = 0
    returncode: int = 0
    raw: str = ""

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def valid(self) -> bool:
        return self.returncode == 0 and self.requests > 0 and self.error_count == 0 and self.non_2xx == 0

    def problems(self) -> str:
        bits = []
        if self.returncode != 0:
            bits.append(f"wrk exited {self.returncode}")
        if self.requests == 0:
            bits.append("no requests completed")
        bits += [f"{k} errors {v}" for k, v in self.errors.items() if v]
        if self.non_2xx:
            bits.append(f"non-2xx {self.non_2xx}")
        return ", ".join(bits)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["valid"] = self.valid
        d["error_count"] = self.error_count
        return d


def parse_wrk(text: str, command: str = "", returncode: int = 0) -> WrkResult:
    r = WrkResult(command=command, returncode=returncode, raw=text)
    m = re.search(r"^\s*Latency\s+([\d.]+\w+)\s+[\d.]+\w+\s+([\d.]+\w+)", text, re.M)
    if m:
        r.latency_avg_ms, r.latency_max_ms = _ms(m.group(1)), _ms(m.group(2))
    for pct, attr in (("50", "p50_ms"), ("75", "p75_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+\w+)", text, re.M)
        if m:
            setattr(r, attr, _ms(m.group(1)))
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", text)
    if m:
        r.requests = int(m.group(1))
        r.seconds = _ms(m.group(2)) / 1000.0
        r.read_bytes = _bytes(m.group(3))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r.errors = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r.non_2xx = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r.rps = float(m.group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+\w+)", text)
    if m:
        r.transfer_bytes_per_s = _bytes(m.group(1))
    return r


def wrk_command(
    url: str,
    *,
    duration: float,
    connections: int = 64,
    threads: int = 1,
    script: str | Path | None = None,
    headers: tuple[str, ...] = (),
    timeout_s: float = 5.0,
    cpu: int | None = 1,
) -> list[str]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        f"--timeout={max(1, round(timeout_s))}s",
    ]
    for h in headers:
        cmd += ["-H", h]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    return cmd


def run_wrk(url: str, *, duration: float, **kw) -> WrkResult:
    cmd = wrk_command(url, duration=duration, **kw)
    text = shlex.join(cmd)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired as e:
        return WrkResult(command=text, returncode=-1, raw=f"wrk timed out: {e}")
    return parse_wrk(proc.stdout + proc.stderr, text, proc.returncode)


def _lua_long_string(data: str) -> str:
    level = 1
    while f"]{'=' * level}]" in data:
        level += 1
    eq = "=" * level
    return f"[{eq}[{data}]{eq}]"


def post_script(directory: Path, body: bytes, content_type: str = "application/json") -> Path:
    """A wrk script that POSTs `body` (the same bytes on every request)."""
    path = directory / f"post-{len(body)}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        f"wrk.body = {_lua_long_string(body.decode('utf-8'))}\n"
    )
    return path


def mixed_script(directory: Path, pairs: list[tuple[int, int]], path_prefix: str = "/mem?size=") -> Path:
    """A wrk script cycling through (request body size, response size) pairs, in order.

    Bodies are built once per wrk thread in init(); each request is a POST of
    that many bytes asking for a response of the other size.
    """
    sizes = ",".join(f"{{{b},{r}}}" for b, r in pairs)
    path = directory / "mixed.lua"
    path.write_text(
        f"local pairs_ = {{{sizes}}}\n"
        "local reqs = {}\n"
        "local n = 0\n"
        "function init(args)\n"
        '  local block = string.rep("a", 1048576)\n'
        "  for i, p in ipairs(pairs_) do\n"
        f'    reqs[i] = wrk.format("POST", "{path_prefix}" .. p[2],\n'
        '      {["Content-Type"] = "application/octet-stream"}, string.sub(block, 1, p[1]))\n'
        "  end\n"
        "end\n"
        "function request()\n"
        "  n = n % #reqs + 1\n"
        "  return reqs[n]\n"
        "end\n"
    )
    return path
