"""A throwaway PostgreSQL for the TechEmpower-style suite: initdb into a temporary
directory, serve on a Unix socket in it, create and seed the ``World`` and
``Fortune`` tables as TFB defines them, stop and remove everything after.

The binaries are Debian's ``postgresql`` package (``/usr/lib/postgresql/<v>/bin``)
or whatever ``initdb`` / ``pg_ctl`` are on PATH; `ensure_binaries` installs the
package with apt when it is missing and we are root, as scripts/bootstrap does
for the build tools. PostgreSQL refuses to run as root, so as root the server
runs as the ``postgres`` user (the package creates it) via ``runuser``.

Standard library only: the harness and the pytest fixture both use it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "hello_world"
DB_USER = "benchmarkdbuser"
DB_PASSWORD = "benchmarkdbpass"

# TFB's fortunes (toolset/databases/postgres/create-postgres.sql), in id order.
FORTUNES: list[tuple[int, str]] = [
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. \u2014 Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af"),
]
ADDED_FORTUNE = "Additional fortune added at request time."
WORLD_ROWS = 10_000


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


SCHEMA_SQL = (
    """
CREATE TABLE world (
  id integer NOT NULL,
  randomnumber integer NOT NULL default 0,
  PRIMARY KEY (id)
);
INSERT INTO world (id, randomnumber)
SELECT x.id, least(floor(random() * 10000 + 1), 10000) FROM generate_series(1, 10000) AS x(id);
CREATE TABLE fortune (
  id integer NOT NULL,
  message varchar(2048) NOT NULL,
  PRIMARY KEY (id)
);
"""
    + "".join(f"INSERT INTO fortune (id, message) VALUES ({i}, {_sql_literal(m)});\n" for i, m in FORTUNES)
    + "ANALYZE world; ANALYZE fortune;\n"
)

APT_PACKAGE = "postgresql"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here (and none could be installed)."""


@dataclass
class PgBinaries:
    initdb: str
    pg_ctl: str
    psql: str
    version: str


def find_binaries() -> PgBinaries | None:
    """initdb, pg_ctl and psql: Debian's newest /usr/lib/postgresql/<v>/bin first, then PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0
    )
    for d in reversed(candidates):
        initdb, pg_ctl = Path(d, "initdb"), Path(d, "pg_ctl")
        psql = Path(d, "psql") if Path(d, "psql").exists() else shutil.which("psql")
        if initdb.exists() and pg_ctl.exists() and psql:
            return PgBinaries(str(initdb), str(pg_ctl), str(psql), _version(str(pg_ctl)))
    initdb, pg_ctl, psql = shutil.which("initdb"), shutil.which("pg_ctl"), shutil.which("psql")
    if initdb and pg_ctl and psql:
        return PgBinaries(initdb, pg_ctl, psql, _version(pg_ctl))
    return None


def _version(pg_ctl: str) -> str:
    try:
        out = subprocess.run([pg_ctl, "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def ensure_binaries(install: bool = True, log=print) -> PgBinaries:
    """The binaries, installing Debian's package when missing (root and apt only)."""
    found = find_binaries()
    if found is not None:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"[pg] PostgreSQL not found: apt-get install {APT_PACKAGE} ...")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", APT_PACKAGE],
            env=env,
            check=False,
            timeout=1200,
        )
        found = find_binaries()
        if found is not None:
            return found
    raise PostgresUnavailable(
        f"PostgreSQL is not installed (no initdb/pg_ctl/psql in /usr/lib/postgresql/*/bin or on PATH); "
        f"install Debian's `{APT_PACKAGE}` package"
    )


@dataclass
class Postgres:
    """A running server: connect with ``host=socket_dir`` (a directory: libpq's and asyncpg's Unix socket form)."""

    binaries: PgBinaries
    root: Path
    data: Path
    socket_dir: Path
    port: int
    run_as: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}:{DB_PASSWORD}@/{DB_NAME}?host={self.socket_dir}&port={self.port}"

    def env(self) -> dict[str, str]:
        """The variables the apps read (TFB's names where it has them)."""
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.port),
            "PGUSER": DB_USER,
            "PGPASSWORD": DB_PASSWORD,
            "PGDATABASE": DB_NAME,
        }

    def psql(self, sql: str, *, db: str = DB_NAME, user: str = DB_USER) -> str:
        """Run SQL with psql; its unaligned, tuples-only output."""
        cmd = [
            self.binaries.psql,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            user,
            "-d",
            db,
        ]
        out = subprocess.run(
            cmd, input=sql, capture_output=True, text=True, timeout=120, env=dict(os.environ, PGPASSWORD=DB_PASSWORD)
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({out.returncode}): {out.stderr.strip()[-800:]}")
        return out.stdout

    def stop(self) -> None:
        _as_user(self.run_as, [self.binaries.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"], check=False)


def _as_user(user: str | None, cmd: list[str], *, check: bool = True, timeout: float = 120) -> str:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {out.returncode}: {(out.stdout + out.stderr).strip()[-1500:]}")
    return out.stdout + out.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres(
    *, cpu: int | None = None, install: bool = True, max_connections: int = 200, log=print
) -> Iterator[Postgres]:
    """Start a seeded PostgreSQL; stop it and remove its files on exit.

    `cpu` pins the server (and every backend it forks) with taskset. The
    settings favour speed over durability (fsync off, as a throwaway
    benchmark database can), which TFB's own PostgreSQL image also does with
    synchronous_commit off.
    """
    binaries = ensure_binaries(install=install, log=log)
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError as e:
            raise PostgresUnavailable("running as root and there is no `postgres` user to run PostgreSQL as") from e
        run_as = "postgres"
    root = Path(tempfile.mkdtemp(prefix="tfb-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    os.chmod(root, 0o755)  # clients (the apps, any user) reach the socket through it
    if run_as is not None:
        ent = pwd.getpwnam(run_as)
        os.chown(root, ent.pw_uid, ent.pw_gid)
        os.chown(sockets, ent.pw_uid, ent.pw_gid)
    port = _free_port()  # the socket file's name carries it; nothing listens on TCP
    pg = Postgres(binaries, root, data, sockets, port, run_as)
    started = False
    try:
        pwfile = root / "pw"
        pwfile.write_text(DB_PASSWORD + "\n")
        if run_as is not None:
            ent = pwd.getpwnam(run_as)
            os.chown(pwfile, ent.pw_uid, ent.pw_gid)
        _as_user(
            run_as,
            [
                binaries.initdb,
                "-D",
                str(data),
                "-U",
                DB_USER,
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth=trust",
                "--no-sync",
            ],
        )
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories={sockets}",
                f"-p {port}",
                f"-c max_connections={max_connections}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c shared_buffers=128MB",
                "-c log_min_messages=warning",
            ]
        )
        cmd = [
            binaries.pg_ctl,
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ]
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu), *cmd]
        _as_user(run_as, cmd)
        started = True
        pg.psql(f"CREATE DATABASE {DB_NAME};", db="postgres")
        pg.psql(SCHEMA_SQL)
        yield pg
    finally:
        if started:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_idle(pg: Postgres, seconds: float = 0.5) -> None:
    """Let autovacuum and checkpoints after a write-heavy test settle before the next one."""
    with contextlib.suppress(RuntimeError):
        pg.psql("CHECKPOINT;", user=DB_USER)
    time.sleep(seconds)
