"""The supervisor of workers=N: workers die with it, and crash loops back off."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

import catzilla.serving
from tests.server.conftest import (
    RawConn,
    ServerProcess,
    free_port,
    port_closes,
    spawn_server,
    wait_until_answering,
)
from tests.server.test_workers import alive

# Workers say when they start and stop (stderr is shared with the supervisor).
ORPHAN_APP = """
import os
import sys

import catzilla.serving
from catzilla import Catzilla

catzilla.serving.PDEATHSIG = {pdeathsig}
app = Catzilla()

@app.on_event("startup")
def up():
    sys.stderr.write(f"worker-up {{os.getpid()}} parent {{os.getppid()}}\\n")  # one write: stderr is shared

@app.on_event("shutdown")
def down():
    sys.stderr.write(f"worker-down {{os.getpid()}}\\n")

@app.get("/pdeathsig")
def pdeathsig():
    import ctypes
    sig = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    return {{"signal": sig.value}}
"""

# The first worker to start serves; every other one raises in its startup hook
# (after sleeping SLEEPS[n] s on its n-th start, if given), so one slot crash-loops
# while the port keeps answering.
CRASH_APP = """
import os
import sys
import time

import catzilla.serving
from catzilla import Catzilla

catzilla.serving._STABLE_AFTER_S = {stable_after}
SERVER, STARTS, SLEEPS = {server!r}, {starts!r}, {sleeps!r}
app = Catzilla()

@app.on_event("startup")
def up():
    try:
        os.close(os.open(SERVER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return
    except FileExistsError:
        pass
    with open(STARTS, "a") as f:  # one slot crashes: its starts come one at a time
        f.write("start\\n")
    with open(STARTS) as f:
        n = len(f.readlines()) - 1
    sys.stderr.write(f"crasher-start {{os.getpid()}} {{time.monotonic():.6f}}\\n")
    time.sleep(SLEEPS[n] if n < len(SLEEPS) else 0)
    raise RuntimeError("this worker fails at startup")

@app.get("/")
def index():
    return "up"
"""

EXITED = re.compile(r"catzilla: worker (\d+) exited \((.*?)\); restarting in ([\d.]+) s")


def kill_group(srv: ServerProcess) -> None:
    """Whatever of the server's session is left (start_new_session: pgid = its pid)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(srv.proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        srv.proc.wait(5)


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return {p for p in pids if alive(p)}


LINUX_ONLY = pytest.mark.skipif(sys.platform != "linux", reason="prctl(PR_SET_PDEATHSIG) is Linux's")


@pytest.mark.parametrize("pdeathsig", [pytest.param(True, marks=LINUX_ONLY), False], ids=["prctl+pipe", "pipe-only"])
def test_workers_exit_when_supervisor_is_killed(pdeathsig: bool) -> None:
    port = free_port()
    srv = spawn_server(ORPHAN_APP.format(pdeathsig=pdeathsig), listen="workers=2", port=port)
    try:
        supervisor = srv.proc.pid
        ups = srv.wait_for(r"worker-up (\d+) parent (\d+)", count=2)
        workers = {int(m.group(1)) for m in ups}
        assert len(workers) == 2
        assert {int(m.group(2)) for m in ups} == {supervisor}
        if pdeathsig:  # the kernel's line is armed in the worker that answers
            with RawConn(port, timeout=3) as c:
                r = c.request("GET", "/pdeathsig", {"Connection": "close"})
            assert r.json() == {"signal": catzilla.serving.DEATH_SIGNAL}

        os.kill(supervisor, signal.SIGKILL)
        srv.proc.wait(5)
        left = wait_gone(workers, timeout=8)
        assert not left, f"workers {left} outlived their SIGKILLed supervisor; stderr:\n{srv.stderr[-2000:]}"
        assert port_closes(port), "the port still answers after the supervisor was killed"
        # they stopped gracefully: shutdown hooks ran (the lines may still be on their way to us)
        for pid in workers:
            srv.wait_for(rf"worker-down {pid}\n", timeout=5)
        if not pdeathsig:  # the pipe alone noticed
            srv.wait_for(r"supervisor gone; stopping", count=2, timeout=5)
    finally:
        kill_group(srv)


def crash_server(tmp_path: Path, stable_after: float = 10.0, sleeps: tuple[float, ...] = ()) -> ServerProcess:
    code = CRASH_APP.format(
        stable_after=stable_after, server=str(tmp_path / "server"), starts=str(tmp_path / "starts"), sleeps=sleeps
    )
    return spawn_server(code, listen="workers=2", port=free_port())


def test_crash_loop_backs_off_and_sigterm_ends_the_wait(tmp_path: Path) -> None:
    srv = crash_server(tmp_path)
    try:
        # exits 1..5 of the crashing slot: delays 0.5, 1, 2, 4, 8 s (~7.5 s in all)
        srv.wait_for(r"restarting in 8\.0 s", timeout=20)
        exits = list(EXITED.finditer(srv.stderr))
        starts = list(re.finditer(r"crasher-start (\d+) ([\d.]+)", srv.stderr))
        assert [m.group(2) for m in exits] == ["exit code 1"] * 5, srv.stderr[-3000:]
        delays = [float(m.group(3)) for m in exits]
        assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
        # each exit line names the worker that had just started (and failed)
        assert [int(m.group(1)) for m in exits] == [int(m.group(1)) for m in starts[:5]]
        # the restarts really came that much later, later each time
        at = [float(m.group(2)) for m in starts[:5]]
        gaps = [b - a for a, b in itertools.pairwise(at)]
        assert all(gap >= delay - 0.05 for gap, delay in zip(gaps, delays[:4], strict=True)), gaps
        assert gaps == sorted(gaps) and len(set(gaps)) == len(gaps), gaps
        # meanwhile the healthy worker kept serving
        wait_until_answering(srv.port, timeout=5, proc=srv.proc)

        # SIGTERM in the 8 s wait: the supervisor stops now, not after it
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        code = srv.proc.wait(8)
        took = time.monotonic() - t0
        assert code == 0, srv.stderr[-3000:]
        assert took < 3.0, f"supervisor took {took:.1f} s to stop during a backoff"
        assert len(re.findall(r"crasher-start", srv.stderr)) == 5, "a worker was started after SIGTERM"
        assert port_closes(srv.port)
    finally:
        kill_group(srv)


def test_backoff_resets_after_a_worker_stayed_up(tmp_path: Path) -> None:
    # the third start stays up past the (here 1 s) stable time before failing
    srv = crash_server(tmp_path, stable_after=1.0, sleeps=(0, 0, 1.5))
    try:
        srv.wait_for(EXITED.pattern, count=4, timeout=15)
        delays = [float(m.group(3)) for m in EXITED.finditer(srv.stderr)][:4]
        assert delays == [0.5, 1.0, 0.5, 1.0], srv.stderr[-3000:]
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


def test_worker_killed_by_signal_is_named() -> None:
    port = free_port()
    srv = spawn_server(ORPHAN_APP.format(pdeathsig=True), listen="workers=2", port=port)
    try:
        victim = int(srv.wait_for(r"worker-up (\d+)")[0].group(1))
        os.kill(victim, signal.SIGKILL)
        srv.wait_for(rf"catzilla: worker {victim} exited \(signal SIGKILL\); restarting in 0\.5 s")
        srv.wait_for(r"worker-up (\d+)", count=3)  # and it was replaced
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)
