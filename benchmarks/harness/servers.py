"""The servers under test: how each is started, checked ready, measured and stopped.

Each server is one process (nginx: master_process off; Granian: its
supervisor plus one worker, both counted) pinned to one CPU with taskset,
started in its own session so that it and its children can be stopped as a
group. RSS is read from /proc/<pid>/status (VmRSS), summed over the tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .paths import APPS, our_python
from .venvs import venv_python

NGINX_ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")


@dataclass
class Ctx:
    python: str
    port: int
    tmp: Path


@dataclass
class ServerSpec:
    name: str
    label: str
    role: str  # "ours" | "peer" | "limit"
    venv: str | None  # benchmarks/peers/<venv>.txt; None: the repo's .venv (ours) or a system binary
    command: Callable[[Ctx], list[str]]
    dists: tuple[str, ...] = ()  # distributions whose versions the report names
    env: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    skip: dict[str, str] = field(default_factory=dict)  # workload -> why it is not run

    def python(self) -> str:
        if self.venv is None:
            return our_python()
        return str(venv_python(self.venv))


def uvicorn_argv(python: str, port: int, module: str, app_dir: Path = APPS) -> list[str]:
    """uvicorn serving ``module:app`` from ``app_dir`` as every peer runs it here:
    uvloop, httptools, no access log."""
    return [
        python,
        "-m",
        "uvicorn",
        f"{module}:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--app-dir",
        str(app_dir),
    ]


def _uvicorn(module: str) -> Callable[[Ctx], list[str]]:
    return lambda c: uvicorn_argv(c.python, c.port, module)


def granian_argv(python: str, port: int, interface: str, module: str, app_dir: Path = APPS) -> list[str]:
    """granian serving ``module:app`` from ``app_dir`` as every peer runs it here:
    one worker, HTTP/1, uvloop, no WebSockets."""
    return [
        python,
        "-m",
        "granian",
        "--interface",
        interface,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--http",
        "1",
        "--no-ws",
        "--loop",
        "uvloop",
        "--log-level",
        "warning",
        "--working-dir",
        str(app_dir),
        f"{module}:app",
    ]


def _granian(interface: str, module: str) -> Callable[[Ctx], list[str]]:
    return lambda c: granian_argv(c.python, c.port, interface, module)


def _script(name: str, *extra: str) -> Callable[[Ctx], list[str]]:
    return lambda c: [c.python, str(APPS / name), *extra]


def _load_payload():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_payload", APPS / "_payload.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _nginx(c: Ctx) -> list[str]:
    """Write a config answering the same bytes as the apps, from nginx itself."""
    payload = _load_payload()
    www = c.tmp / "www"
    www.mkdir(exist_ok=True)
    (www / "large.json").write_bytes(json.dumps(payload.LARGE, separators=(",", ":")).encode())
    hello = json.dumps(payload.HELLO, separators=(",", ":"))
    echo = (
        "echo_read_request_body; echo_request_body;"
        if NGINX_ECHO_MODULE.exists()
        else 'return 501 \'{"detail":"no echo module"}\';'
    )
    t = c.tmp
    conf = f"""
{f"load_module {NGINX_ECHO_MODULE};" if NGINX_ECHO_MODULE.exists() else ""}
worker_processes 1;
master_process off;
daemon off;
pid {t}/nginx.pid;
error_log {t}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    default_type application/json;
    sendfile on;
    keepalive_requests 1000000;
    client_max_body_size 2m;
    client_body_buffer_size 64k;
    client_body_temp_path {t}/client_body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen 127.0.0.1:{c.port} backlog=1024;
        location = / {{ return 200 '{hello}'; }}
        location ~ ^/users/([0-9]+)$ {{ return 200 '{{"user_id":$1}}'; }}
        location = /search {{ return 200 '{{"q":"$arg_q","limit":$arg_limit}}'; }}
        location = /echo {{ {echo} }}
        location = /large {{ root {www}; try_files /large.json =404; }}
    }}
}}
"""
    (t / "nginx.conf").write_text(conf)
    return [nginx_binary() or "nginx", "-p", str(t), "-e", str(t / "error.log"), "-c", str(t / "nginx.conf")]


SERVERS: list[ServerSpec] = [
    ServerSpec(
        "catzilla",
        "Catzilla (this repo)",
        "ours",
        None,
        _script("catzilla_ours.py"),
        ("catzilla",),
        notes="use_jemalloc=True, production=True; C server (libuv + llhttp + radix router)",
    ),
    ServerSpec(
        "fastapi",
        "FastAPI / uvicorn",
        "peer",
        "fastapi",
        _uvicorn("fastapi_app"),
        ("fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools"),
        notes="uvicorn --loop uvloop --http httptools, async def handlers",
    ),
    ServerSpec(
        "asgi-uvicorn",
        "raw ASGI / uvicorn",
        "peer",
        "uvicorn",
        _uvicorn("asgi_raw"),
        ("uvicorn", "uvloop", "httptools"),
        notes="no framework: the floor of the ASGI stack",
    ),
    ServerSpec(
        "granian-rsgi",
        "Granian RSGI (raw)",
        "peer",
        "granian",
        _granian("rsgi", "granian_rsgi"),
        ("granian", "uvloop"),
        notes="--workers 1 --http 1 --loop uvloop; supervisor + 1 worker process",
    ),
    ServerSpec(
        "granian-asgi",
        "Granian ASGI (raw)",
        "peer",
        "granian",
        _granian("asgi", "asgi_raw"),
        ("granian", "uvloop"),
        notes="the raw ASGI app; supervisor + 1 worker process",
    ),
    ServerSpec(
        "socketify",
        "Socketify",
        "peer",
        "socketify",
        _script("socketify_app.py"),
        ("socketify",),
        notes="uWebSockets via CFFI; compact json_serializer",
    ),
    ServerSpec(
        "robyn",
        "Robyn",
        "peer",
        "robyn",
        _script("robyn_app.py", "--processes", "1", "--workers", "1", "--log-level", "WARNING"),
        ("robyn",),
        notes="--processes 1 --workers 1",
    ),
    ServerSpec(
        "blacksheep",
        "BlackSheep / uvicorn",
        "peer",
        "blacksheep",
        _uvicorn("blacksheep_app"),
        ("blacksheep", "uvicorn", "uvloop", "httptools"),
    ),
    ServerSpec(
        "catzilla-0.2.3",
        "catzilla 0.2.3 (PyPI)",
        "peer",
        "catzilla023",
        _script("catzilla_023_app.py"),
        ("catzilla",),
        notes="the previous generation, from PyPI, in its own venv",
    ),
    ServerSpec(
        "nginx",
        "nginx (static limit)",
        "limit",
        None,
        _nginx,
        (),
        notes="master_process off, 1 worker; `return 200 '...'`, echo module for /echo, a file for /large",
        skip={"async": "nginx has no handler to await in"},
    ),
]

BY_NAME = {s.name: s for s in SERVERS}


def get_spec(name: str) -> ServerSpec:
    return BY_NAME[name]


class ServerError(RuntimeError):
    def __init__(self, message: str, excerpt: str = "") -> None:
        super().__init__(message)
        self.excerpt = excerpt


class Server:
    """A running server. Use as a context manager, or call stop()."""

    def __init__(self, spec: ServerSpec, proc: subprocess.Popen, port: int, tmp: Path, argv: list[str]) -> None:
        self.spec, self.proc, self.port, self.tmp, self.argv = spec, proc, port, tmp, argv
        self.pid = proc.pid
        self.env: dict[str, str] = {}
        self.exit_code: int | None = None

    @property
    def command(self) -> str:
        """The command line, with the environment it was given, to reproduce it by hand."""
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return (env + " " if env else "") + " ".join(self.argv)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> dict:
        return procs.tree_rss(self.pid)

    def request(self, path: str = "/", **kw) -> procs.HTTPResult:
        return procs.http_request(self.port, path, **kw)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            text = (self.tmp / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        if self.spec.name == "nginx":
            with contextlib.suppress(OSError):  # nginx may not have written one
                text += (self.tmp / "error.log").read_text(errors="replace")
        return text[-chars:]

    def stop(self, timeout: float = 8.0) -> int | None:
        """SIGINT to the group (graceful), then SIGTERM, then SIGKILL."""
        if self.exit_code is not None:
            return self.exit_code
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        # children that outlived their parent (same process group, which we created)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # none left
            os.killpg(self.pid, signal.SIGKILL)
        self.exit_code = self.proc.wait()
        return self.exit_code

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_server(
    spec: ServerSpec,
    *,
    port: int | None = None,
    python: str | None = None,
    cpu: int | None = 0,
    env: dict[str, str] | None = None,
    command: Callable[[Ctx], list[str]] | None = None,
    ready_path: str = "/",
    ready_timeout: float = 30.0,
) -> Server:
    """Start a server pinned to `cpu` and wait until it answers HTTP on `ready_path`."""
    port = port or procs.free_port()
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name}-"))
    ctx = Ctx(python or spec.python(), port, tmp)
    argv = (command or spec.command)(ctx)
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    full_env = dict(os.environ)
    for k in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        full_env.pop(k, None)
    full_env.update({"BENCH_PORT": str(port), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    full_env.update(spec.env)
    full_env.update(env or {})
    with open(tmp / "server.log", "wb") as log:  # the child has its own copy of the descriptor
        try:
            proc = subprocess.Popen(
                argv,
                cwd=APPS,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ServerError(f"cannot start {spec.name}: {e}", str(e)) from e
    server = Server(spec, proc, port, tmp, argv)
    server.env = {"BENCH_PORT": str(port), **spec.env, **(env or {})}
    deadline = time.monotonic() + ready_timeout
    last_error = ""
    while True:
        if proc.poll() is not None:
            excerpt = server.log_tail()
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
            raise ServerError(f"{spec.name} exited with {proc.returncode} before it was ready", excerpt)
        if procs.port_open(port):
            try:
                procs.http_request(port, ready_path, timeout=2.0)
                return server
            except OSError as e:  # includes http.client errors on a half-ready server
                last_error = repr(e)
            except Exception as e:
                last_error = repr(e)
        if time.monotonic() > deadline:
            excerpt = server.log_tail() + ("\n" + last_error if last_error else "")
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
            raise ServerError(f"{spec.name} did not answer on port {port} within {ready_timeout:.0f}s", excerpt)
        time.sleep(0.05)
