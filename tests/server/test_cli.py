"""`catzilla run module:app`: real processes, sockets and signals.

The supervisor must leave no orphan whatever ends it, restart workers one by
one on SIGHUP without a failed request, add/remove workers on SIGTTIN/SIGTTOU,
recycle workers on their limits, reload on a file change, and say what is
wrong with a bad command line in one line (no traceback)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from catzilla import Catzilla
from tests.server.conftest import (
    HOST,
    REPO,
    RawConn,
    ServerProcess,
    free_port,
    port_closes,
    wait_until_answering,
)
from tests.server.test_supervisor import kill_group, wait_gone

APP = """
import os
import re
import sys

from catzilla import Catzilla, _core

VERSION = {version!r}
IMPORTED = bytes(300_000)  # a block of its own, made as the module is imported
app = Catzilla()
LEAK = []


@app.on_event("startup")
def up():
    sys.stderr.write(f"worker-up {{os.getpid()}} parent {{os.getppid()}}\\n")


@app.on_event("shutdown")
def down():
    sys.stderr.write(f"worker-down {{os.getpid()}}\\n")


@app.get("/pid")
def pid():
    return {{
        "pid": os.getpid(),
        "version": VERSION,
        "allocator": app.get_allocator_info()["current_allocator"],
        "scope": app.get_allocator_info()["allocator_scope"],
        "python_heap": app.get_memory_stats()["arenas"].get("python", {{}}).get("allocated_bytes", 0),
        "import_owned": _core._process_heap_owns(IMPORTED),
        "env": os.environ.get("CZ_TEST_VALUE"),
        "root_path": app.root_path,
        "access_log": app.access_log,
        "metrics": app.metrics,
        "route_memory": app.route_memory_enabled,
    }}


@app.get("/leak")
def leak():
    LEAK.append(b"x" * (1 << 20))  # touched pages: RSS grows 1 MiB a request
    return {{"pid": os.getpid(), "held": len(LEAK)}}


@app.get("/who")
def who(request):
    return {{"client": request.client.host, "scheme": request.url.scheme, "host": request.url.netloc}}


@app.get("/peer")
def peer(request):
    client = request.client
    return {{"pid": os.getpid(), "client": None if client is None else [client.host, client.port],
            "scheme": request.url.scheme, "host": request.url.netloc}}


def create_app():
    return app
"""


def write_app(where: Path, version: str = "v1", name: str = "czapp") -> Path:
    path = where / f"{name}.py"
    path.write_text(textwrap.dedent(APP.format(version=version)))
    return path


def cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    wait: bool = True,
    timeout: float = 20.0,
    pass_fds: tuple[int, ...] = (),
    uds: str | None = None,
) -> ServerProcess:
    """``catzilla run args``; with ``wait``, until it answers (on TCP, or on the Unix socket ``uds``)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CATZILLA_")}
    # the installed catzilla (or a PYTHONPATH the run was given), and the repo for tests.* apps
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)]))
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "catzilla", "run", *args],
        cwd=str(cwd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        start_new_session=True,
        pass_fds=pass_fds,
    )
    srv = ServerProcess(proc)
    srv.start_drains()
    if wait and uds is not None:
        try:
            srv.wait_for(r"serving\s+unix:", timeout=timeout)
            wait_until_answering_unix(uds, timeout=timeout)
        except BaseException:
            kill_group(srv)
            raise
    elif wait:
        try:
            m = srv.wait_for(r"serving\s+http://127\.0\.0\.1:(\d+)", timeout=timeout)[0]
            srv.port = int(m.group(1))
            wait_until_answering(srv.port, timeout=timeout, proc=proc)
        except BaseException:
            kill_group(srv)
            raise
    return srv


def get(port: int, path: str, headers: dict[str, str] | None = None) -> dict:
    with RawConn(port, timeout=5) as c:
        r = c.request("GET", path, {"Connection": "close", **(headers or {})})
    assert r.status == 200, r
    return r.json()


def wait_until_answering_unix(path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            uds_get(path, "/pid")
            return
        except (OSError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def uds_get(path: str, target: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """One request on a new connection to the Unix socket at ``path``."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) as client:
        return client.get(f"http://localhost{target}", headers={"Connection": "close", **(headers or {})})


def worker_pids(srv: ServerProcess, count: int) -> set[int]:
    return {int(m.group(1)) for m in srv.wait_for(r"worker-up (\d+)", count=count)}


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.add(int(entry))
    return found


LINUX_ONLY = pytest.mark.skipif(sys.platform != "linux", reason="/proc")


# -- errors a user makes: one line, no traceback -------------------------------------------


@pytest.mark.parametrize(
    ("app", "extra", "expected"),
    [
        ("nosuchmodule:app", [], "could not import module 'nosuchmodule'"),
        ("czapp", [], 'must be given as "module:attribute"'),
        ("czapp:nothere", [], "module 'czapp' has no attribute 'nothere'"),
        ("czapp:create_app", [], "pass --factory"),
        ("czapp:VERSION", ["--factory"], "is not callable"),
    ],
    ids=["missing-module", "no-colon", "missing-attribute", "factory-hint", "factory-not-callable"],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_app_is_one_clear_line(tmp_path: Path, app: str, extra: list[str], expected: str, workers: str) -> None:
    write_app(tmp_path)
    srv = cli([app, "--port", str(free_port()), "--workers", workers, *extra], tmp_path, wait=False)
    try:
        code = srv.proc.wait(15)
    finally:
        kill_group(srv)
    err = srv.stderr
    assert code == 1, err
    assert expected in err, err
    assert "Traceback" not in err, err
    assert err.count("catzilla: error:") == 1, err  # said once, not once per worker


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    write_app(tmp_path)
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        srv = cli(["czapp:app", "--port", str(port)], tmp_path, wait=False)
        try:
            code = srv.proc.wait(15)
        finally:
            kill_group(srv)
    assert code == 1
    assert f"cannot bind 127.0.0.1:{port}: the address is already in use" in srv.stderr
    assert "Traceback" not in srv.stderr


def test_bad_environment_value_is_named(tmp_path: Path) -> None:
    write_app(tmp_path)
    srv = cli(["czapp:app"], tmp_path, env={"CATZILLA_WORKERS": "many"}, wait=False)
    assert srv.proc.wait(15) == 1
    assert "CATZILLA_WORKERS='many'" in srv.stderr and "Traceback" not in srv.stderr


# -- serving -------------------------------------------------------------------------------------


def test_run_from_environment_and_env_file(tmp_path: Path) -> None:
    write_app(tmp_path)
    port = free_port()
    (tmp_path / "prod.env").write_text(
        f"# settings\nexport CATZILLA_PORT={port}\nCZ_TEST_VALUE='from file'\nCATZILLA_ROOT_PATH=/api\n"
    )
    env = {
        "CATZILLA_APP": "czapp:create_app",
        "CATZILLA_FACTORY": "1",
        "CATZILLA_ENV_FILE": "prod.env",
        "CATZILLA_JEMALLOC": "0",
        "CATZILLA_ACCESS_LOG": "false",
        "CATZILLA_METRICS": "yes",
        "CATZILLA_ROUTE_MEMORY": "no",
    }
    srv = cli([], tmp_path, env=env)
    try:
        assert srv.port == port
        body = get(port, "/pid")
        assert body["env"] == "from file"
        assert body["root_path"] == "/api"
        assert body["allocator"] == "malloc"
        assert body["access_log"] is False and body["metrics"] is True
        assert body["route_memory"] is False  # set apart from metrics
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


def test_command_line_wins_over_environment(tmp_path: Path) -> None:
    write_app(tmp_path)
    port = free_port()
    srv = cli(
        ["czapp:app", "--port", str(port), "--no-jemalloc", "--access-log"],
        tmp_path,
        env={"CATZILLA_PORT": "1", "CATZILLA_ACCESS_LOG": "0"},
    )
    try:
        body = get(port, "/pid")
        assert body["allocator"] == "malloc" and body["access_log"] is True
        assert srv.stop(signal.SIGINT) == 0
    finally:
        kill_group(srv)


def test_access_log_goes_to_stdout_one_bare_line_per_request(tmp_path: Path) -> None:
    """uvicorn's default configuration: the access log on stdout as the bare line
    (several requests in one batch each get theirs), catzilla's messages on stderr."""
    write_app(tmp_path)
    srv = cli(["czapp:app", "--port", str(free_port()), "--access-log"], tmp_path)
    try:
        with RawConn(srv.port, timeout=5) as c:
            for _ in range(8):
                assert c.request("GET", "/who").status == 200
        srv.wait_for(r'"GET /who HTTP/1\.1" 200', stream="stdout", count=8, timeout=5)
        lines = [ln for ln in srv.stdout.splitlines() if "/who" in ln]
        assert len(lines) == 8
        assert all(re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "GET /who HTTP/1\.1" 200 \d+', ln) for ln in lines), lines
        assert "/who" not in srv.stderr
        assert srv.stop(signal.SIGINT) == 0
    finally:
        kill_group(srv)


@pytest.mark.parametrize(
    ("flags", "allocator", "scope"),
    [
        ([], "jemalloc", "process"),
        (["--allocator", "mimalloc"], "mimalloc", "process"),
        (["--allocator-scope", "app"], "jemalloc", "app"),
    ],
    ids=["default", "mimalloc", "app_scope"],
)
def test_workers_serve_with_the_allocator_at_its_scope(
    tmp_path: Path, flags: list[str], allocator: str, scope: str
) -> None:
    if allocator not in Catzilla.get_available_allocators():
        pytest.skip(f"this build has no {allocator}")
    write_app(tmp_path)
    port = free_port()
    srv = cli(["czapp:app", "--port", str(port), "--workers", "2", *flags], tmp_path)
    try:
        workers = worker_pids(srv, 2)
        seen: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + 20
        while set(seen) != workers and time.monotonic() < deadline:
            body = get(port, "/pid")  # new connections: the kernel spreads them over the workers
            seen[body["pid"]] = body
        assert set(seen) == workers
        for body in seen.values():
            assert (body["allocator"], body["scope"]) == (allocator, scope)
            assert (body["python_heap"] > 0) is (scope == "process")
            # the switch came before the app's module was imported
            assert body["import_owned"] is (scope == "process")
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


EARLY_APP = """
import sys
import catzilla
from catzilla import Catzilla, _core

app = Catzilla()


@app.get("/early")
def early():
    heap = _core.process_heap_stats()
    return {
        # made while the interpreter started, before any line of catzilla ran
        "encodings": _core._process_heap_owns(sys.modules["encodings"].__dict__),
        "site": _core._process_heap_owns(sys.modules["site"].__dict__),
        "reason": catzilla.PROCESS_HEAP_REASON,
        "backend": heap["backend"] if heap else None,
        "executable": sys.executable,
        "prefix": sys.prefix,
    }
"""


@pytest.mark.parametrize("allocator", ["jemalloc", "mimalloc"])
def test_run_takes_the_heap_before_the_interpreter_starts(tmp_path: Path, allocator: str) -> None:
    from catzilla import cli as catzilla_cli

    if catzilla_cli.launcher() is None:
        pytest.skip("this build has no launcher (CPython is not a shared library here)")
    if allocator not in Catzilla.get_available_allocators():
        pytest.skip(f"this build has no {allocator}")
    (tmp_path / "earlyapp.py").write_text(EARLY_APP)
    srv = cli(["earlyapp:app", "--port", str(free_port()), "--allocator", allocator], tmp_path)
    try:
        body = get(srv.port, "/early")
        assert body["reason"] is None and body["backend"] == allocator
        assert body["encodings"] and body["site"], body
        # the interpreter is the one the command ran under: same executable, same venv
        assert (body["executable"], body["prefix"]) == (sys.executable, sys.prefix)
        assert srv.stop(signal.SIGINT) == 0
    finally:
        kill_group(srv)


@LINUX_ONLY
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_no_orphan_survives_the_supervisor(tmp_path: Path, sig: signal.Signals) -> None:
    write_app(tmp_path)
    srv = cli(["czapp:app", "--port", str(free_port()), "--workers", "2"], tmp_path)
    try:
        workers = worker_pids(srv, 2)
        assert children_of(srv.proc.pid) == workers
        os.kill(srv.proc.pid, sig)
        code = srv.proc.wait(15)
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0), srv.stderr[-2000:]
        assert not wait_gone(workers, timeout=8), srv.stderr[-2000:]
        assert port_closes(srv.port)
        for pid in workers:  # gracefully: shutdown hooks ran
            srv.wait_for(rf"worker-down {pid}\n", timeout=5)
    finally:
        kill_group(srv)


def hammer(port: int, stop: threading.Event, results: dict[str, int], new_connections: bool) -> None:
    conn: RawConn | None = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = RawConn(port, timeout=5)
            r = conn.request("GET", "/pid", {"Connection": "close"} if new_connections else {})
            ok = r.status == 200
            results["ok" if ok else "failed"] += 1
            if new_connections or (r.header("connection") or "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, ConnectionError) as exc:
            results["failed"] += 1
            results.setdefault("errors", [])  # type: ignore[arg-type]
            results["errors"].append(repr(exc))  # type: ignore[attr-defined]
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()


@LINUX_ONLY
def test_sighup_restarts_workers_one_by_one_without_a_failed_request(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    srv = cli(["czapp:app", "--port", str(free_port()), "--workers", "2"], tmp_path)
    try:
        supervisor = srv.proc.pid
        first = worker_pids(srv, 2)
        write_app(tmp_path, "v2-new-code")  # SIGHUP loads the app anew (another length: see the reload test)
        stop = threading.Event()
        results: dict[str, int] = {"ok": 0, "failed": 0}
        threads = [
            threading.Thread(target=hammer, args=(srv.port, stop, results, new), daemon=True) for new in (True, False)
        ]
        for t in threads:
            t.start()
        for n in (1, 2):
            os.kill(supervisor, signal.SIGHUP)
            srv.wait_for(r"replaced by worker \d+ \(SIGHUP\)", count=2 * n, timeout=20)
            time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(10)
        # The port always had a listener, a request on an idle keep-alive connection
        # of a stopping worker is answered (Connection: close), and the connections
        # queued on a slot's socket go to the slot's next worker: nothing fails.
        assert results["failed"] == 0, (results, srv.stderr[-3000:])
        assert results["ok"] > 20
        assert not wait_gone(first, timeout=10), "old workers still running"
        now = children_of(supervisor)
        assert len(now) == 2 and not now & first
        assert get(srv.port, "/pid")["version"] == "v2-new-code"
        # each replacement is one line naming both workers and the reason
        lines = [ln for ln in srv.stderr.splitlines() if "replaced by" in ln]
        assert len(lines) == 4, lines
        assert srv.stop(signal.SIGTERM) == 0
        assert not wait_gone(now, timeout=8)
    finally:
        kill_group(srv)


@LINUX_ONLY
def test_sighup_with_a_broken_app_keeps_the_running_workers(tmp_path: Path) -> None:
    write_app(tmp_path)
    srv = cli(["czapp:app", "--port", str(free_port()), "--workers", "2"], tmp_path)
    try:
        first = worker_pids(srv, 2)
        (tmp_path / "czapp.py").write_text("import nosuchdependency\n")
        os.kill(srv.proc.pid, signal.SIGHUP)
        srv.wait_for(r"could not load the app; restart abandoned", timeout=15)
        assert children_of(srv.proc.pid) == first
        assert get(srv.port, "/pid")["pid"] in first
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


@LINUX_ONLY
def test_sigttin_adds_and_sigttou_removes_a_worker(tmp_path: Path) -> None:
    write_app(tmp_path)
    srv = cli(["czapp:app", "--port", str(free_port()), "--workers", "2"], tmp_path)
    try:
        supervisor = srv.proc.pid
        worker_pids(srv, 2)
        os.kill(supervisor, signal.SIGTTIN)
        srv.wait_for(r"catzilla: worker (\d+) added \(SIGTTIN\): 3 workers")
        worker_pids(srv, 3)
        assert len(children_of(supervisor)) == 3
        os.kill(supervisor, signal.SIGTTOU)
        removed = int(srv.wait_for(r"catzilla: worker (\d+) removed \(SIGTTOU\): 2 workers")[0].group(1))
        assert not wait_gone({removed}, timeout=10)
        time.sleep(0.6)  # nothing restarts it
        assert len(children_of(supervisor)) == 2
        assert "restarting in" not in srv.stderr
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


@LINUX_ONLY
def test_limit_max_requests_recycles_gracefully(tmp_path: Path) -> None:
    write_app(tmp_path)
    srv = cli(
        ["czapp:app", "--port", str(free_port()), "--limit-max-requests", "30", "--limit-max-requests-jitter", "5"],
        tmp_path,
    )
    try:
        first = worker_pids(srv, 1)
        pids = [get(srv.port, "/pid")["pid"] for _ in range(60)]  # every request answered
        m = srv.wait_for(r"catzilla: worker (\d+) replaced by worker (\d+) \(max requests: (\d+) served, limit (\d+)\)")
        assert int(m[0].group(1)) in first
        assert 30 <= int(m[0].group(4)) <= 35
        assert not wait_gone(first, timeout=10)
        assert len(set(pids)) >= 1
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


@LINUX_ONLY
def test_workers_max_rss_replaces_a_leaking_worker(tmp_path: Path) -> None:
    write_app(tmp_path)
    srv = cli(["czapp:app", "--port", str(free_port()), "--workers-max-rss", "120"], tmp_path)
    try:
        first = worker_pids(srv, 1)
        failures = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "replaced by" not in srv.stderr:
            try:
                get(srv.port, "/leak")
            except (OSError, ConnectionError, AssertionError):
                failures += 1
            time.sleep(0.01)
        m = srv.wait_for(
            r"catzilla: worker (\d+) replaced by worker (\d+) "
            r"\(max RSS: ([\d.]+) MiB( growing \d+ MiB/s)?, limit 120 MiB\)"
        )
        assert int(m[0].group(1)) in first
        assert float(m[0].group(3)) < 120 * 1.1
        assert failures == 0
        assert not wait_gone(first, timeout=10)
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


@LINUX_ONLY
def test_reload_restarts_on_change_keeping_the_port(tmp_path: Path) -> None:
    pytest.importorskip("watchfiles")
    write_app(tmp_path, "v1")
    srv = cli(["czapp:app", "--port", str(free_port()), "--workers", "2", "--reload"], tmp_path)
    try:
        srv.wait_for(r"catzilla: reload: watching")
        assert get(srv.port, "/pid")["version"] == "v1"
        time.sleep(0.5)  # the watcher is up
        first = children_of(srv.proc.pid)
        # another length: a .pyc of the same second and size would pass for the new source
        write_app(tmp_path, "v2-reloaded")
        srv.wait_for(r"replaced by worker \d+ \(reload: czapp\.py changed\)", count=2, timeout=20)
        assert not wait_gone(first, timeout=10)
        assert get(srv.port, "/pid")["version"] == "v2-reloaded"
        # a file outside --reload-include is not watched
        (tmp_path / "notes.txt").write_text("x")
        time.sleep(1.0)
        assert srv.stderr.count("replaced by") == 2
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


def test_proxy_headers_only_from_allowed_ips(tmp_path: Path) -> None:
    write_app(tmp_path)
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "example.com"}
    srv = cli(["czapp:app", "--port", str(free_port())], tmp_path)  # default: 127.0.0.1 trusted
    try:
        assert get(srv.port, "/who", headers) == {"client": "203.0.113.7", "scheme": "https", "host": "example.com"}
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)
    srv = cli(["czapp:app", "--port", str(free_port()), "--forwarded-allow-ips", "10.0.0.0/8"], tmp_path)
    try:
        body = get(srv.port, "/who", headers)
        assert body["client"] == "127.0.0.1" and body["scheme"] == "http" and body["host"] != "example.com"
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)


def test_console_entry_point_and_module_agree() -> None:
    import catzilla.__main__  # noqa: F401
    from catzilla import cli as cli_module

    with pytest.raises(SystemExit) as exc:
        cli_module.main(["run", "--help"])
    assert exc.value.code == 0


# -- --uds and --fd: a Unix domain socket, an inherited listening socket ------------------------


def short_dir() -> Path:
    """A directory for Unix sockets (sun_path holds 107 bytes; pytest's tmp_path may be longer)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="cz-", dir="/tmp"))


def uds_hammer(path: str, stop: threading.Event, results: dict[str, int]) -> None:
    """Requests on new connections to the Unix socket until stopped: every failure counted."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) as client:
        while not stop.is_set():
            try:
                r = client.get("http://localhost/pid", headers={"Connection": "close"})
                results["ok" if r.status_code == 200 else "failed"] += 1
            except httpx.HTTPError as exc:
                results["failed"] += 1
                results.setdefault("errors", [])  # type: ignore[arg-type]
                results["errors"].append(repr(exc))  # type: ignore[attr-defined]


@LINUX_ONLY
def test_uds_serves_every_worker_and_restarts_without_a_failed_request(tmp_path: Path) -> None:
    write_app(tmp_path)
    where = short_dir()
    path = str(where / "app.sock")
    # from the environment, as every flag; access log and metrics over the socket too
    env = {"CATZILLA_UDS": path, "CATZILLA_WORKERS": "2", "CATZILLA_METRICS": "1"}
    srv = cli(["czapp:app", "--access-log"], tmp_path, env=env, uds=path)
    try:
        assert f"serving   unix:{path}" in srv.stderr
        st = os.stat(path)
        assert stat_is_socket(st.st_mode) and st.st_mode & 0o777 == 0o666
        supervisor = srv.proc.pid
        first = worker_pids(srv, 2)
        seen = set()
        deadline = time.monotonic() + 10
        while seen != first and time.monotonic() < deadline:  # both workers accept on the one socket
            seen.add(uds_get(path, "/pid").json()["pid"])
        assert seen == first
        # a Unix socket's peer has no address: request.client is None (as uvicorn's scope["client"]),
        # and the default forwarded_allow_ips (127.0.0.1) does not trust it
        body = uds_get(path, "/peer", {"X-Forwarded-For": "203.0.113.7"}).json()
        assert body["client"] is None and body["host"] == "localhost"
        # the access log (on stdout): client "-"
        srv.wait_for(r'- - - \[[^]]+\] "GET /peer HTTP/1\.1" 200 \d+', stream="stdout", timeout=5)
        metrics = uds_get(path, "/metrics").text
        assert "catzilla_requests_total{worker=" in metrics, metrics[:2000]  # this worker's figures
        # SIGHUP: the new workers accept on the same socket before the old ones stop; the old
        # ones' queued connections stay in that socket, so nothing is lost
        stop = threading.Event()
        results: dict[str, int] = {"ok": 0, "failed": 0}
        threads = [threading.Thread(target=uds_hammer, args=(path, stop, results), daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        for n in (1, 2):
            os.kill(supervisor, signal.SIGHUP)
            srv.wait_for(r"replaced by worker \d+ \(SIGHUP\)", count=2 * n, timeout=20)
            time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(10)
        assert results["failed"] == 0, (results, srv.stderr[-3000:])
        assert results["ok"] > 20
        assert not wait_gone(first, timeout=10)
        now = children_of(supervisor)
        assert len(now) == 2 and not now & first
        assert srv.stop(signal.SIGTERM) == 0
        assert not os.path.exists(path), "the socket file is removed at exit"
    finally:
        kill_group(srv)


def stat_is_socket(mode: int) -> bool:
    import stat

    return stat.S_ISSOCK(mode)


def test_uds_trusts_proxy_headers_from_star_or_unix(tmp_path: Path) -> None:
    write_app(tmp_path)
    path = str(short_dir() / "app.sock")
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "example.com"}
    for allow in ("*", "unix:"):
        srv = cli(["czapp:app", "--uds", path, "--forwarded-allow-ips", allow], tmp_path, uds=path)
        try:
            body = uds_get(path, "/peer", headers).json()
            assert body["client"] == ["203.0.113.7", 0] and body["scheme"] == "https"
            assert body["host"] == "example.com"
            assert srv.stop(signal.SIGTERM) == 0
        finally:
            kill_group(srv)


def test_uds_replaces_a_stale_socket_and_keeps_its_mode(tmp_path: Path) -> None:
    write_app(tmp_path)
    path = str(short_dir() / "app.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # a crashed server's: the file stays, nobody listens
    stale.close()
    os.chmod(path, 0o660)
    srv = cli(["czapp:app", "--uds", path], tmp_path, uds=path)
    try:
        assert uds_get(path, "/pid").status_code == 200
        assert os.stat(path).st_mode & 0o777 == 0o660
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        kill_group(srv)
    assert not os.path.exists(path)


def bad_socket_cases(where: Path) -> list[tuple[list[str], str]]:
    (where / "plain").write_text("not a socket")
    return [
        (["--uds", str(where / "missing" / "app.sock")], f"cannot bind unix:{where}/missing/app.sock: no such file"),
        (["--uds", str(where / "plain")], "the path exists and is not a socket"),
        (["--uds", "/tmp/" + "x" * 120], "the path is too long"),
        (["--fd", "97"], "--fd 97: fd 97 is not an open file descriptor"),
        (["--fd", "-1"], "argument --fd: must be >= 0, got -1"),
        (["--uds", "/tmp/a.sock", "--fd", "3"], "--uds and --fd are exclusive"),
    ]


def said(srv: ServerProcess, text: str) -> str:
    """stderr once it holds ``text`` (any case): the process may exit before its output is read."""
    import re

    srv.wait_for("(?i)" + re.escape(text), timeout=5)
    return srv.stderr


def test_bad_uds_or_fd_is_one_clear_line(tmp_path: Path) -> None:
    write_app(tmp_path)
    where = short_dir()
    for flags, expected in bad_socket_cases(where):
        srv = cli(["czapp:app", *flags], tmp_path, wait=False)
        try:
            code = srv.proc.wait(15)
        finally:
            kill_group(srv)
        err = said(srv, expected)
        assert code in (1, 2), (flags, err)
        assert "Traceback" not in err, (flags, err)


def test_uds_in_use_and_fd_not_a_stream_socket_are_refused(tmp_path: Path) -> None:
    write_app(tmp_path)
    path = str(short_dir() / "app.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(path)
        live.listen()
        srv = cli(["czapp:app", "--uds", path], tmp_path, wait=False)
        assert srv.proc.wait(15) == 1
        assert "Traceback" not in said(srv, "the address is already in use")
        assert os.path.exists(path)  # another server's: left alone
    with open(tmp_path / "czapp.py", "rb") as regular, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for fd, expected in ((regular.fileno(), "is not a socket"), (udp.fileno(), "not a TCP or Unix stream socket")):
            srv = cli(["czapp:app", "--fd", str(fd)], tmp_path, wait=False, pass_fds=(fd,))
            assert srv.proc.wait(15) == 1
            assert "Traceback" not in said(srv, expected)


@LINUX_ONLY
def test_fd_serves_an_inherited_tcp_socket_with_workers(tmp_path: Path) -> None:
    write_app(tmp_path)
    with socket.socket() as listener:
        listener.bind((HOST, 0))  # as systemd or circus would: bound (listening or not), then inherited
        port = listener.getsockname()[1]
        fd = listener.fileno()
        srv = cli(["czapp:app", "--fd", str(fd), "--workers", "2"], tmp_path, pass_fds=(fd,), wait=False)
        try:
            srv.wait_for(rf"serving\s+http://127\.0\.0\.1:{port}\b", timeout=20)
            srv.port = port
            wait_until_answering(port, timeout=20, proc=srv.proc)
            workers = worker_pids(srv, 2)
            seen: set[int] = set()
            deadline = time.monotonic() + 10
            while seen != workers and time.monotonic() < deadline:
                seen.add(get(port, "/pid")["pid"])
            assert seen == workers
            assert get(port, "/peer")["client"][0] == "127.0.0.1"
            assert srv.stop(signal.SIGTERM) == 0
            assert not wait_gone(workers, timeout=8)
        finally:
            kill_group(srv)
        # the socket was the parent's: still open and bound here
        assert listener.getsockname()[1] == port


def test_fd_serves_an_inherited_unix_socket(tmp_path: Path) -> None:
    write_app(tmp_path)
    path = str(short_dir() / "inherited.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen()
        fd = listener.fileno()
        srv = cli(["czapp:app"], tmp_path, env={"CATZILLA_FD": str(fd)}, pass_fds=(fd,), uds=path)
        try:
            assert f"serving   unix:{path}" in srv.stderr
            assert uds_get(path, "/peer").json()["client"] is None
            assert srv.stop(signal.SIGTERM) == 0
        finally:
            kill_group(srv)
        assert os.path.exists(path)  # the parent's socket: the server does not remove it


def test_listen_api_serves_uds_and_fd() -> None:
    from catzilla import Catzilla

    app = Catzilla()

    @app.get("/peer")
    def peer(request):
        return {"client": request.client}

    path = str(short_dir() / "api.sock")
    with pytest.raises(ValueError, match="exclusive"):
        app.listen(uds=path, fd=3)
    with pytest.raises(ValueError, match="is not a socket"), open(__file__, "rb") as f:
        app.listen(fd=f.fileno())
    errors: list[BaseException] = []

    def serve(**where: object) -> threading.Thread:
        def run() -> None:
            try:
                app.listen(**where)  # type: ignore[arg-type]
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    t = serve(uds=path)
    wait_until_answering_unix_path(path, errors)
    assert uds_get(path, "/peer").json() == {"client": None}
    app.stop()
    t.join(15)
    assert not t.is_alive() and not errors and not os.path.exists(path)
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        port = listener.getsockname()[1]
        t = serve(fd=listener.fileno())
        wait_until_answering(port, timeout=15)
        assert get(port, "/peer")["client"][0] == "127.0.0.1"
        app.stop()
        t.join(15)
        assert not t.is_alive() and not errors
        assert listener.fileno() >= 0 and listener.getsockname()[1] == port  # still the caller's


def wait_until_answering_unix_path(path: str, errors: list[BaseException], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert not errors, errors
        try:
            uds_get(path, "/peer")
            return
        except (OSError, httpx.HTTPError):
            assert time.monotonic() < deadline, "not answering on the Unix socket"
            time.sleep(0.05)


def test_uds_clients_are_not_counted_per_client_address() -> None:
    """max_connections_per_client counts peer addresses; a Unix socket's clients have none
    (all of them are the local proxy): they are served, not refused."""
    from catzilla import Catzilla

    app = Catzilla()

    @app.get("/pid")
    def pid():
        return {"pid": os.getpid()}

    path = str(short_dir() / "limit.sock")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            app.listen(uds=path, max_connections_per_client=1)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        wait_until_answering_unix_path(path, errors)
        clients = [httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) for _ in range(3)]
        try:
            for _ in range(2):  # three keep-alive connections open at once
                assert all(c.get("http://localhost/pid").status_code == 200 for c in clients)
        finally:
            for c in clients:
                c.close()
    finally:
        app.stop()
        t.join(15)
    assert not errors
