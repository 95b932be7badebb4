"""Processes, ports, RSS and a minimal HTTP client (standard library only)."""

from __future__ import annotations

import http.client
import os
import socket
import time
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = stat_fields(int(entry.name))
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def stat_fields(pid: int) -> list[bytes]:
    """/proc/<pid>/stat after the command name (field 3 on: state, ppid, ...)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # the command name may hold spaces and parentheses: split after the last ')'
    return data[data.rfind(b")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants that exist now."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def status_kb(pid: int, field: str) -> int | None:
    """A 'kB' field of /proc/<pid>/status (VmRSS, VmHWM), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_rss(pid: int) -> dict:
    """VmRSS (and VmHWM) of a server: the sum over its process tree, and its largest process."""
    per = []
    for p in process_tree(pid):
        rss = status_kb(p, "VmRSS")
        if rss is not None:
            per.append((p, rss, status_kb(p, "VmHWM") or rss))
    return {
        "rss_kb": sum(r for _, r, _ in per),
        "hwm_kb": sum(h for _, _, h in per),
        "largest_kb": max((r for _, r, _ in per), default=0),
        "processes": len(per),
    }


class HTTPResult:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, seconds: float) -> None:
        self.status, self.headers, self.body, self.seconds = status, headers, body, seconds


def http_request(
    port: int,
    path: str = "/",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    host: str = "127.0.0.1",
) -> HTTPResult:
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return HTTPResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, time.monotonic() - t0)
    finally:
        conn.close()
