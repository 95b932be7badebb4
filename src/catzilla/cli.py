"""``catzilla run module:app``: serve an app from the command line, as uvicorn,
granian and gunicorn users expect.

Every flag can also come from the environment: ``--port`` from
``CATZILLA_PORT``, ``--reload-dir`` from ``CATZILLA_RELOAD_DIR`` (comma-separated),
``--no-access-log`` from ``CATZILLA_ACCESS_LOG=0``, the app from ``CATZILLA_APP``.
A flag given on the command line wins over the environment; ``--env-file``
is read first (it does not override variables already set).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from catzilla import logs, serving

ENV_PREFIX = "CATZILLA_"
PROCESS_HEAP_ENV = "CATZILLA_PROCESS_HEAP"  # read by catzilla/__init__.py (and csrc/launcher)
CORE_MODULE_ENV = "CATZILLA_CORE_MODULE"  # the extension csrc/launcher loads before the interpreter starts
LIBPYTHON_ENV = "CATZILLA_LIBPYTHON"  # the CPython shared library csrc/launcher runs
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})
# the watched files by default (watchfiles' DefaultFilter also leaves out .git, __pycache__, ...)
DEFAULT_RELOAD_INCLUDE = ("*.py",)
DEFAULT_RELOAD_EXCLUDE = (".*", ".py[cod]", ".sw.*", "~*")


class UserError(Exception):
    """A mistake on the command line or in ``module:app``: one line, no traceback."""


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"catzilla: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


# -- the parser ----------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {text}")
    return value


def add_run_parser(sub: Any) -> argparse.ArgumentParser:
    run: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="serve module:app",
        description="Serve a Catzilla app: catzilla run module:app [options]. "
        "Each option can also be set with an environment variable CATZILLA_<OPTION> (e.g. CATZILLA_PORT=9000).",
    )
    a = run.add_argument
    a("app", nargs="?", help='the app, as "module:attribute" (e.g. "main:app"); env CATZILLA_APP')
    a("--factory", action="store_true", default=False, help="module:attribute is a function that returns the app")
    a("--app-dir", default=".", help="the directory to import the app from (put first on sys.path; default .)")
    a("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    a("--port", type=port_number, default=8000, help="port to bind (default 8000)")
    a(
        "--uds",
        default=None,
        help="serve a Unix domain socket at this path instead of --host/--port "
        "(a stale socket file is replaced; the file is removed at exit)",
    )
    a(
        "--fd",
        type=non_negative_int,
        default=None,
        help="serve the listening socket inherited as this file descriptor (TCP or Unix; systemd, circus)",
    )
    a("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    a("--reload", action="store_true", default=False, help="restart the workers when files change (watchfiles)")
    a("--reload-dir", action="append", default=None, help="a directory to watch (repeatable; default: the cwd)")
    a("--reload-include", action="append", default=None, help="a glob of files to watch (repeatable; default *.py)")
    a("--reload-exclude", action="append", default=None, help="a glob of files not to watch (repeatable)")
    a("--log-level", choices=LOG_LEVELS, default="info", help="log level (default info)")
    a(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one log line per request (default: the app's setting)",
    )
    a("--log-config", default=None, help="a logging configuration file (passed to the app)")
    a("--metrics", action=argparse.BooleanOptionalAction, default=None, help="Prometheus metrics (passed to the app)")
    a(
        "--route-memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="memory per route (passed to the app; default: as --metrics)",
    )
    a(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="honour X-Forwarded-For/Proto/Host and Forwarded from --forwarded-allow-ips (default on)",
    )
    a(
        "--forwarded-allow-ips",
        default=None,
        help='proxies to believe: addresses or networks, comma-separated, or "*" '
        "(default: $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )
    a("--root-path", default="", help="the path prefix a proxy strips (for url_for and the docs)")
    a("--timeout-keep-alive", type=positive_float, default=None, help="seconds an idle connection is kept")
    a(
        "--timeout-graceful-shutdown",
        type=positive_float,
        default=None,
        help="seconds a stop waits for requests in progress",
    )
    a(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default=None,
        help="the async handlers' event loop (default: auto, uvloop when installed)",
    )
    a("--limit-concurrency", type=positive_int, default=None, help="most connections at once (max_connections)")
    a("--backlog", type=positive_int, default=None, help="the listen backlog")
    a("--limit-max-requests", type=positive_int, default=None, help="replace a worker after this many requests")
    a(
        "--limit-max-requests-jitter",
        type=non_negative_int,
        default=None,
        help="plus up to this many, at random (default: a tenth of --limit-max-requests)",
    )
    a("--workers-max-rss", type=positive_float, default=None, help="replace a worker whose RSS reaches this (MiB)")
    a(
        "--max-allocated-mb",
        type=positive_float,
        default=None,
        help="replace a worker whose app allocator holds this much (MiB)",
    )
    a("--env-file", default=None, help="a .env file of variables to set (existing ones are kept)")
    a(
        "--jemalloc",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--no-jemalloc: the app's allocator is malloc whatever the app asks (CATZILLA_JEMALLOC=0)",
    )
    a(
        "--allocator",
        choices=("auto", "jemalloc", "mimalloc", "malloc"),
        default=None,
        help="the app's allocator, whatever the app asks (docs/memory.md)",
    )
    a(
        "--allocator-scope",
        choices=("process", "app"),
        default=None,
        help="process: the allocator also holds the interpreter's memory (the default); app: only the C core's",
    )
    return run


def env_name(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


def apply_environment(parser: argparse.ArgumentParser, environ: dict[str, str] | os._Environ[str]) -> None:
    """Defaults from CATZILLA_<OPTION> variables (a flag on the command line still wins)."""
    for action in parser._actions:
        if action.dest in ("help",) or (not action.option_strings and action.dest != "app"):
            continue
        name = env_name(action.dest)
        raw = environ.get(name)
        if raw is None and action.dest == "jemalloc" and environ.get(ENV_PREFIX + "NO_JEMALLOC") is not None:
            value = parse_bool(ENV_PREFIX + "NO_JEMALLOC", environ[ENV_PREFIX + "NO_JEMALLOC"])
            parser.set_defaults(jemalloc=not value)
            continue
        if raw is None and action.dest == "forwarded_allow_ips":
            raw = environ.get("FORWARDED_ALLOW_IPS")  # uvicorn's
        if raw is None:
            continue
        parser.set_defaults(**{action.dest: convert_env(action, name, raw)})


def parse_bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise UserError(f"{name}={raw!r}: expected a boolean (1/0, true/false, yes/no, on/off)")


def convert_env(action: argparse.Action, name: str, raw: str) -> Any:
    if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)):
        return parse_bool(name, raw)
    if isinstance(action, argparse._AppendAction):
        return [part.strip() for part in raw.split(",") if part.strip()]
    value: Any = raw
    if action.type is not None:
        try:
            value = action.type(raw)  # type: ignore[operator]
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise UserError(f"{name}={raw!r}: {exc}") from None
    if action.choices is not None and value not in action.choices:
        raise UserError(f"{name}={raw!r}: expected one of {', '.join(map(str, action.choices))}")
    return value


def load_env_file(path: str) -> None:
    """KEY=VALUE lines (``export`` and quotes allowed, ``#`` comments) into os.environ,
    not overriding variables already set."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UserError(f"--env-file {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("export "):
            text = text[7:].lstrip()
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--env-file {path}, line {number}: expected KEY=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if line.strip().partition("=")[2].strip()[0] == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        os.environ.setdefault(key, value)


def parse_run(parser: argparse.ArgumentParser, run_parser: argparse.ArgumentParser, argv: list[str]) -> Any:
    """Parse ``run`` arguments: the env file first, then the environment's defaults."""
    first, _ = parser.parse_known_args(argv)
    env_file = first.env_file if first.env_file is not None else os.environ.get(env_name("env_file"))
    if env_file:
        load_env_file(env_file)
    apply_environment(run_parser, os.environ)
    return parser.parse_args(argv)


# -- loading the app ---------------------------------------------------------------------


def load_app(spec: str, factory: bool) -> Any:
    """``module:attribute`` (dots allowed in both) -> the Catzilla app; UserError for a user's mistake."""
    from catzilla.app import Catzilla

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f'the app must be given as "module:attribute" (e.g. "main:app"), got {spec!r}')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise UserError(f"could not import module {module_name!r}: no module named {missing!r}") from None
        raise  # a module the app imports is missing: the traceback says where
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UserError(f"module {module_name!r} has no attribute {attr!r}") from None
    if factory:
        if not callable(obj):
            raise UserError(f"{spec} is not callable (--factory expects a function returning the app)")
        obj = obj()
    if not isinstance(obj, Catzilla):
        hint = " (a function? pass --factory to call it)" if callable(obj) and not factory else ""
        raise UserError(f"{spec} is not a Catzilla app: got {type(obj).__name__}{hint}")
    return obj


# -- serving -------------------------------------------------------------------------------


def server_config(args: Any) -> dict[str, float]:
    from catzilla.app import check_limits

    limits: dict[str, Any] = {}
    for dest, key in (
        ("timeout_keep_alive", "keepalive_timeout"),
        ("timeout_graceful_shutdown", "shutdown_timeout"),
        ("limit_concurrency", "max_connections"),
        ("backlog", "backlog"),
    ):
        value = getattr(args, dest)
        if value is not None:
            limits[key] = value
    return check_limits(limits)


def prepare(app: Any, args: Any) -> None:
    """The command line's settings on the app, before it serves."""
    app.root_path = args.root_path or app.root_path
    if args.loop is not None:
        app.loop = app._runner.loop_kind = args.loop
    app.proxy_headers = bool(args.proxy_headers)
    app.forwarded_allow_ips = args.forwarded_allow_ips if args.forwarded_allow_ips is not None else "127.0.0.1"
    # The access log is on by default for `catzilla run` in development (uvicorn's habit),
    # off for a production app; --access-log/--no-access-log decide.
    app.access_log = args.access_log if args.access_log is not None else not app.production
    if args.log_config is not None:
        app.log_config = args.log_config
    if args.metrics is not None:
        app.metrics = args.metrics
    if args.route_memory is not None:
        app.route_memory = args.route_memory


def check_port(host: str, port: int) -> None:
    """UserError when ``host:port`` cannot be bound (busy, not an address here)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(addr)
        except OSError as exc:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if exc.errno is not None and exc.errno == getattr(__import__("errno"), "EADDRINUSE", -1):
                raise UserError(f"cannot bind {where}: the address is already in use (another server?)") from None
            raise UserError(f"cannot bind {where}: {exc.strerror or exc}") from None


def reload_watcher(args: Any) -> Callable[[Callable[[str], None]], None]:
    """The supervisor's file watcher: a change restarts the workers, one by one."""
    try:
        import watchfiles
    except ImportError:
        raise UserError("--reload needs watchfiles: pip install 'catzilla[reload]'") from None
    import fnmatch
    from pathlib import Path

    dirs = [str(Path(d).resolve()) for d in (args.reload_dir or [os.getcwd()])]
    for d in dirs:
        if not os.path.isdir(d):
            raise UserError(f"--reload-dir {d}: not a directory")
    include = list(args.reload_include or DEFAULT_RELOAD_INCLUDE)
    exclude = list(DEFAULT_RELOAD_EXCLUDE) + list(args.reload_exclude or [])
    excluded_dirs = [str(Path(e).resolve()) for e in exclude if os.path.isdir(e)]

    class Filter(watchfiles.DefaultFilter):  # type: ignore[misc,unused-ignore]
        def __call__(self, change: Any, path: str) -> bool:
            if not super().__call__(change, path):
                return False
            name = os.path.basename(path)
            if any(path == d or path.startswith(d + os.sep) for d in excluded_dirs):
                return False
            if any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(path, pat) for pat in exclude):
                return False
            return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(path, pat) for pat in include)

    def start(request_restart: Callable[[str], None]) -> None:
        def watch() -> None:
            with contextlib.suppress(Exception):  # the supervisor is ending
                for changes in watchfiles.watch(*dirs, watch_filter=Filter(), raise_interrupt=False):
                    names = sorted({os.path.relpath(path) for _, path in changes})
                    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                    request_restart(f"reload: {shown} changed")

        threading.Thread(target=watch, name="catzilla-reload", daemon=True).start()
        serving.say(f"catzilla: reload: watching {', '.join(dirs)} for {', '.join(include)}")

    return start


def run(args: Any) -> int:
    if args.app is None:
        raise UserError('which app? catzilla run module:app (e.g. "main:app"), or set CATZILLA_APP')
    if args.uds is not None and args.fd is not None:
        raise UserError("--uds and --fd are exclusive: serve one socket")
    if args.uds is not None and not args.uds:
        raise UserError("--uds: the path is empty")
    if args.jemalloc is not None:
        # read by Catzilla() in the processes that import the app
        os.environ[env_name("jemalloc")] = "1" if args.jemalloc else "0"
    for dest in ("allocator", "allocator_scope"):
        if getattr(args, dest) is not None:
            os.environ[env_name(dest)] = getattr(args, dest)
    reexec_with_process_heap(args)
    app_dir = os.path.abspath(args.app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    if args.loop is not None:
        from catzilla.runner import check_loop

        try:
            check_loop(args.loop)
        except ValueError as exc:
            raise UserError(f"--loop {args.loop}: {exc}") from None
    logs.configure_logging(args.log_level)  # uvicorn's way: catzilla's messages to stderr, the access log to stdout
    config = server_config(args)
    from catzilla.app import make_recycling

    recycling = make_recycling(
        args.limit_max_requests, args.limit_max_requests_jitter, args.workers_max_rss, args.max_allocated_mb
    )
    host, port = args.host, args.port
    socket_given = args.uds is not None or args.fd is not None
    supervised = args.workers > 1 or args.reload or recycling.active or port != 0 or socket_given
    if port == 0 and not socket_given and (args.workers > 1 or args.reload or recycling.active):
        raise UserError("--workers, --reload and worker recycling need a fixed --port (not 0)")
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    if not supervised:  # port 0: one process, the app imported here
        app = load_app(args.app, args.factory)
        prepare(app, args)
        app.listen(port, host, 1, **config)
        return 0
    with contextlib.ExitStack() as listening:
        listen_fd = None
        if args.fd is not None:
            try:
                url = serving.describe_fd(args.fd)
            except ValueError as exc:
                raise UserError(f"--fd {args.fd}: {exc}") from None
            listen_fd = args.fd
        elif args.uds is not None:
            # bound once, here: every worker (and every replacement) accepts on this socket
            try:
                listener = serving.UnixListener(args.uds, int(config.get("backlog", 1024)))
            except OSError as exc:
                raise UserError(str(exc)) from None
            listening.callback(listener.close)
            url, listen_fd = listener.url, listener.fd
        else:
            check_port(host, port)
        return supervise_workers(args, url, host, port, listen_fd, config, recycling)


def supervise_workers(
    args: Any,
    url: str,
    host: str,
    port: int,
    listen_fd: int | None,
    config: dict[str, float],
    recycling: serving.Recycling,
) -> int:
    """The supervisor of ``catzilla run``: workers that import the app and serve
    host:port (a SO_REUSEPORT socket per worker slot) or the listening socket ``listen_fd``."""
    watcher = reload_watcher(args) if args.reload else None
    workers = args.workers
    holder: dict[str, Any] = {}

    def serve_one() -> None:
        try:
            app = load_app(args.app, args.factory)
        except UserError as exc:
            print(f"catzilla: error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(serving.EXIT_NO_APP) from None
        except Exception:
            import traceback

            print(f"catzilla: error: importing {args.app} failed:", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            raise SystemExit(serving.EXIT_NO_APP) from None
        prepare(app, args)
        holder["app"] = app
        if holder.get("stop"):
            app.stop()
        announce = (lambda bound: app._announce(url, bound, workers)) if serving.first_worker() else None
        fd = listen_fd if listen_fd is not None else serving.slot_listener()
        app.serve_worker(host, port, config, announce, fd=fd)

    def stop_one() -> None:
        holder["stop"] = True
        app = holder.get("app")
        if app is not None:
            app.stop()

    shutdown_timeout = config.get("shutdown_timeout", serving.DEFAULT_SHUTDOWN_TIMEOUT_S)
    try:
        listener = None if listen_fd is not None else serving.tcp_listener(host, port, int(config.get("backlog", 1024)))
        serving.supervise(
            workers,
            serve_one,
            stop_one,
            shutdown_timeout,
            recycling,
            on_started=watcher,
            one_first=True,
            listener=listener,
        )
    except serving.StartupError:
        return 1
    return 0


def early_heap_backend(args: Any) -> str | None:
    """The allocator to give the interpreter's memory to from its first import, or None."""
    from catzilla import memory

    if os.environ.get(env_name("allocator_scope"), "process").strip().lower() != "process":
        return None
    choice = os.environ.get(env_name("allocator"), "auto").strip().lower()
    if choice in ("auto", "jemalloc"):
        choice = "jemalloc" if args.jemalloc is not False else "malloc"
    return choice if choice != "malloc" and choice in memory.available_allocators() else None


def reexec_with_process_heap(args: Any) -> None:
    """Start this command again with CATZILLA_PROCESS_HEAP set, so that the
    allocator takes the interpreter's memory before anything is imported (the
    app, and catzilla itself): objects made before the switch stay with the
    allocator they came from, and imports are most of a fresh process's heap.
    Same pid, arguments and environment; once (the variable marks it)."""
    if os.environ.get(PROCESS_HEAP_ENV) is not None or args.command_line is None:
        return
    backend = early_heap_backend(args)
    os.environ[PROCESS_HEAP_ENV] = backend or ""
    if backend is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # as it was started (interpreter options such as -X dev kept), else as a module
    argv = list(sys.orig_argv)
    if argv[len(argv) - len(args.command_line) :] != args.command_line:
        argv = [sys.executable, "-m", "catzilla", *args.command_line]
    exe = launcher()
    if exe is not None:
        # the interpreter through csrc/launcher: the heap is taken before its first block;
        # argv[0] stays the interpreter's path, from which Python finds its prefix and venv
        from catzilla import _core

        os.environ[CORE_MODULE_ENV] = _core.__file__ or ""
        os.environ[LIBPYTHON_ENV] = libpython_path()
        argv[0] = sys.executable
    os.execv(exe or sys.executable, argv)


def libpython_path() -> str:
    """This interpreter's CPython shared library, or "" when it has none (a static build)."""
    import sysconfig

    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return ""
    path = os.path.join(sysconfig.get_config_var("LIBDIR") or "", sysconfig.get_config_var("INSTSONAME") or "")
    return path if os.path.isfile(path) else ""


def launcher() -> str | None:
    """catzilla/_python (csrc/launcher/cz_launcher.c), when this build has it
    and this interpreter is a shared library it can load (LIBPYTHON_ENV)."""
    if not sys.platform.startswith("linux"):
        return None
    from catzilla import _core

    path = os.path.join(os.path.dirname(_core.__file__ or ""), "_python")
    if not _core.build_info().get("launcher") or not os.access(path, os.X_OK) or not libpython_path():
        return None
    return path


def main(argv: list[str] | None = None) -> int:
    from catzilla.diagnose import collect, render

    parser = argparse.ArgumentParser(prog="catzilla")
    sub = parser.add_subparsers(dest="command", required=True)
    diag = sub.add_parser("diagnose", help="platform, build options and allocator status")
    diag.add_argument("--json", action="store_true", help="print the report as JSON")
    run_parser = add_run_parser(sub)
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] == "run":
            args = parse_run(parser, run_parser, args_list)
            args.command_line = args_list if argv is None else None  # a program's own arguments: re-exec-able
        else:
            args = parser.parse_args(args_list)
        if args.command == "diagnose":
            import json

            report = collect()
            print(json.dumps(report, indent=2) if args.json else render(report))
            return 0
        return run(args)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        return 130
