"""workers=2: forked workers sharing a fixed port under a supervisor."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.server.conftest import RawConn, connect_refused, free_port, spawn_server

APP = """
import os
from catzilla import Catzilla
app = Catzilla()

@app.get("/pid")
def pid():
    return {"pid": os.getpid()}
"""


def pid_of_fresh_connection(port: int) -> int | None:
    try:
        with RawConn(port, timeout=3) as c:
            r = c.request("GET", "/pid", {"Connection": "close"})
    except (OSError, ConnectionError):
        return None
    assert r.status == 200
    return r.json()["pid"]


def collect_pids(port: int, want: int, within: float = 20.0) -> set[int]:
    """The workers that answer fresh connections. By time, not by tries: the
    banner comes before every worker listens, and a slow (sanitized, loaded)
    worker may start seconds after the first one answers everything."""
    pids: set[int] = set()
    deadline = time.monotonic() + within
    while len(pids) < want and time.monotonic() < deadline:
        pid = pid_of_fresh_connection(port)
        if pid is not None:
            pids.add(pid)
        else:
            time.sleep(0.02)
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_share_port_restart_and_stop() -> None:
    port = free_port()
    srv = spawn_server(APP, listen="workers=2", port=port)
    try:
        assert "workers   2" in srv.stderr
        supervisor = srv.proc.pid
        pids = collect_pids(port, 2)
        assert len(pids) == 2, f"responses came from {pids} only"
        assert supervisor not in pids

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        new: set[int] = set()
        while time.monotonic() < deadline and not new:
            pid = pid_of_fresh_connection(port)
            if pid is not None and pid not in pids:
                new.add(pid)
        assert new, "no new worker answered within 10 s of SIGKILL"
        assert not alive(victim)
        assert pid_of_fresh_connection(port) is not None  # the port still answers
        srv.wait_for(rf"worker {victim} exited")
        survivors = (pids - {victim}) | new

        srv.send_signal(signal.SIGINT)
        code = srv.proc.wait(15)
        assert code == 0, f"supervisor exit code {code}; stderr:\n{srv.stderr[-2000:]}"
        deadline = time.monotonic() + 5
        while any(alive(p) for p in survivors) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in survivors), "workers outlived the supervisor"
        assert connect_refused(port)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(5)


def test_workers_need_fixed_port() -> None:
    from catzilla import Catzilla

    app = Catzilla()
    with pytest.raises(ValueError, match="fixed port"):
        app.listen(port=0, workers=2)
    app.close()


def test_workers_on_a_busy_port_raise_at_once() -> None:
    """The supervisor makes the workers' listening sockets: a port another
    server holds is an OSError from listen(), not workers failing in a loop."""
    import socket

    from catzilla import Catzilla

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = Catzilla()
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*in use"):
            app.listen(port=port, workers=2)
        app.close()
