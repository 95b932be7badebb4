"""Startup/shutdown hooks and lifespan: once per serving process, around serving."""

import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from catzilla import Catzilla, Request
from catzilla.testing import TestClient

# on_event is deprecated (as in FastAPI) and still works: tested here
pytestmark = pytest.mark.filterwarnings("ignore:on_event is deprecated:DeprecationWarning")


def test_on_event_hooks_sync_and_async() -> None:
    events: list[str] = []
    app = Catzilla(auto_memory_tuning=False, on_startup=[lambda: events.append("ctor-startup")])

    @app.on_event("startup")
    def startup():
        events.append("startup")

    @app.on_event("startup")
    async def startup_async():
        events.append("startup-async")

    @app.on_event("shutdown")
    async def shutdown():
        events.append("shutdown")

    @app.get("/")
    def index():
        return list(events)

    with TestClient(app) as c:
        assert c.get("/").json() == ["ctor-startup", "startup", "startup-async"]
        assert c.get("/").json() == ["ctor-startup", "startup", "startup-async"]
    assert events == ["ctor-startup", "startup", "startup-async", "shutdown"]
    with pytest.raises(ValueError):
        app.on_event("boot")(lambda: None)


def test_lifespan_context_manager_and_state() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app):
        events.append("enter")
        yield {"db": "connected"}
        events.append("exit")

    app = Catzilla(auto_memory_tuning=False, lifespan=lifespan)

    @app.get("/")
    def index(request: Request):
        return {"db": request.app.state.db, "same_app": request.app is app}

    with TestClient(app) as c:
        assert events == ["enter"]
        assert c.get("/").json() == {"db": "connected", "same_app": True}
    assert events == ["enter", "exit"]


def test_startup_failure_stops_listen() -> None:
    app = Catzilla(auto_memory_tuning=False)

    @app.on_event("startup")
    def fail():
        raise RuntimeError("no database")

    with pytest.raises(RuntimeError, match="no database"), TestClient(app):
        pass


def test_hooks_run_once_per_worker() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "events.log"
        code = textwrap.dedent(f"""
            import os, socket
            from catzilla import Catzilla
            app = Catzilla(production=True, auto_memory_tuning=False)
            def record(what):
                with open({str(log)!r}, "a") as f:
                    f.write(f"{{what}} {{os.getpid()}}\\n")
            app.on_event("startup")(lambda: record("startup"))
            app.on_event("shutdown")(lambda: record("shutdown"))
            @app.get("/pid")
            def pid():
                return os.getpid()
            s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
            print(port, flush=True)
            app.listen(port=port, workers=2)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())
            pids: set[int] = set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(pids) < 2:
                try:
                    pids.add(httpx.get(f"http://127.0.0.1:{port}/pid", timeout=2).json())
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert len(pids) == 2, "two workers should answer"
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        lines = log.read_text().split()
        starts = [int(p) for w, p in zip(lines[::2], lines[1::2], strict=True) if w == "startup"]
        stops = [int(p) for w, p in zip(lines[::2], lines[1::2], strict=True) if w == "shutdown"]
        assert sorted(starts) == sorted(pids) and sorted(stops) == sorted(pids)
        assert proc.pid not in starts  # not the supervisor
