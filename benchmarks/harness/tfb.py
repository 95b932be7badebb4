"""The TechEmpower-style suite: servers, test types, TFB's answer checks.

Each test type follows the TFB requirements
(https://github.com/TechEmpower/FrameworkBenchmarks/wiki/Project-Information-Framework-Tests-Overview):
JSON serialization, plaintext with HTTP pipelining of 16, single query,
multiple queries (1 and 20), fortunes (the 12 rows plus one added at request
time, sorted, rendered by a template, HTML-escaped), data updates (1 and 20:
each row read, then updated, the new values answered) and cached queries.
Every server's answer is checked as TFB's verifier would before it is
measured; a wrong answer is reported, never measured.
"""

from __future__ import annotations

import html.parser
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import pg
from .paths import APPS, PEERS, VENVS
from .servers import Ctx, ServerSpec, granian_argv, uvicorn_argv

TFB_APPS = APPS / "tfb"
CATZILLA_SITE = VENVS / "tfb-catzilla-site"  # asyncpg, psycopg, jinja2 for our_python()


@dataclass(frozen=True)
class Test:
    name: str
    title: str
    path: str
    check: str  # the name of the check below
    n: int = 1  # rows a queries/updates/cached answer must hold
    pipeline: int = 1
    connections: int | None = None  # None: the run's --connections
    db: bool = True


TESTS: list[Test] = [
    Test("json", "JSON serialization", "/json", "json", db=False),
    Test("plaintext", "plaintext, pipelined x16", "/plaintext", "plaintext", pipeline=16, connections=256, db=False),
    Test("db", "single query", "/db", "db"),
    Test("queries-1", "multiple queries, 1", "/queries?queries=1", "queries", n=1),
    Test("queries-20", "multiple queries, 20", "/queries?queries=20", "queries", n=20),
    Test("fortunes", "fortunes (template)", "/fortunes", "fortunes"),
    Test("updates-1", "data updates, 1", "/updates?queries=1", "updates", n=1),
    Test("updates-20", "data updates, 20", "/updates?queries=20", "updates", n=20),
    Test("cached-20", "cached queries, 20", "/cached-queries?count=20", "cached", n=20),
]
BY_NAME = {t.name: t for t in TESTS}


def _script(name: str, *extra: str) -> Callable[[Ctx], list[str]]:
    return lambda c: [c.python, str(TFB_APPS / name), *extra]


def _uvicorn(module: str) -> Callable[[Ctx], list[str]]:
    return lambda c: uvicorn_argv(c.python, c.port, module, TFB_APPS)


def _granian(c: Ctx) -> list[str]:
    return granian_argv(c.python, c.port, "rsgi", "granian_tfb", TFB_APPS)


def catzilla_env() -> dict[str, str]:
    """Our Catzilla runs on the repo's interpreter with the drivers from CATZILLA_SITE;
    CATZILLA_BENCH_PYTHONPATH puts another build first (a worktree's build/site)."""
    extra = os.environ.get("CATZILLA_BENCH_PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join(p for p in (extra, str(CATZILLA_SITE)) if p)}


def servers() -> list[ServerSpec]:
    env = catzilla_env()
    return [
        ServerSpec(
            "catzilla",
            "Catzilla, async + asyncpg",
            "ours",
            None,
            _script("catzilla_tfb.py"),
            ("catzilla", "asyncpg", "jinja2"),
            env={**env, "TFB_DRIVER": "asyncpg"},
            notes="async def handlers on the asyncio loop that steps the server; asyncpg pool; catzilla.templating",
        ),
        ServerSpec(
            "catzilla-sync",
            "Catzilla, sync + psycopg 3",
            "ours",
            None,
            _script("catzilla_tfb.py"),
            ("catzilla", "psycopg", "psycopg-binary", "jinja2"),
            env={**env, "TFB_DRIVER": "psycopg"},
            notes="def handlers (moved to the thread pool once seen blocking); one psycopg connection per thread",
            # the same sync handlers as "catzilla": measured once
            skip={t: "same handler as Catzilla async" for t in ("json", "plaintext", "cached-20")},
        ),
        ServerSpec(
            "fastapi",
            "FastAPI / uvicorn",
            "peer",
            "tfb-fastapi",
            _uvicorn("fastapi_tfb"),
            ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "asyncpg", "jinja2"),
            notes="uvicorn --loop uvloop --http httptools; asyncpg; Starlette's Jinja2Templates",
        ),
        ServerSpec(
            "blacksheep",
            "BlackSheep / uvicorn",
            "peer",
            "tfb-blacksheep",
            _uvicorn("blacksheep_tfb"),
            ("blacksheep", "uvicorn", "uvloop", "httptools", "asyncpg", "jinja2"),
            notes="uvicorn --loop uvloop --http httptools; asyncpg; Jinja2",
        ),
        ServerSpec(
            "granian-rsgi",
            "Granian RSGI (raw)",
            "peer",
            "tfb-granian",
            _granian,
            ("granian", "uvloop", "asyncpg", "jinja2"),
            notes="--workers 1 --http 1 --loop uvloop; pool made in __rsgi_init__; Jinja2",
        ),
        ServerSpec(
            "socketify",
            "Socketify",
            "peer",
            "tfb-socketify",
            _script("socketify_tfb.py"),
            ("socketify", "asyncpg", "jinja2"),
            notes="async handlers on socketify's loop; asyncpg; Jinja2",
        ),
        ServerSpec(
            "robyn",
            "Robyn",
            "peer",
            "tfb-robyn",
            _script("robyn_tfb.py", "--processes", "1", "--workers", "1", "--log-level", "WARNING"),
            ("robyn", "asyncpg", "jinja2"),
            notes="--processes 1 --workers 1; async handlers; asyncpg; Jinja2",
        ),
    ]


def catzilla_requirements() -> Path:
    return PEERS / "tfb-catzilla.txt"


# ---- TFB's answer checks -------------------------------------------------------------


class TableRows(html.parser.HTMLParser):
    """The fortunes table's cells, unescaped, and whether any markup came from the data."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def expected_fortunes() -> list[tuple[int, str]]:
    rows = [*pg.FORTUNES, (0, pg.ADDED_FORTUNE)]
    return sorted(rows, key=lambda r: r[1])


def _problem(status: int, headers: dict[str, str], body: bytes, test: Test, db: pg.Postgres | None) -> str:
    """'' when the answer is what TFB's verifier accepts, else what is wrong."""
    ctype = headers.get("content-type", "").lower()
    if status != 200:
        return f"status {status}: {body[:200]!r}"
    if test.check == "plaintext":
        if not ctype.startswith("text/plain"):
            return f"content-type {ctype!r}"
        return "" if body == b"Hello, World!" else f"body {body[:100]!r}"
    if test.check == "fortunes":
        if not ctype.startswith("text/html"):
            return f"content-type {ctype!r}"
        if "utf-8" not in ctype:
            return f"content-type {ctype!r} names no utf-8 charset"
        parser = TableRows()
        parser.feed(body.decode("utf-8"))
        if parser.tags.count("script"):
            return "a <script> tag in the page: the messages are not escaped"
        rows = [r for r in parser.rows if r and r != ["id", "message"]]
        got = [(int(r[0]), r[1]) for r in rows if len(r) == 2 and r[0].strip().isdigit()]
        if got != expected_fortunes():
            return f"fortunes table differs: {got[:3]!r}... ({len(got)} rows)"
        return ""
    if not ctype.startswith("application/json"):
        return f"content-type {ctype!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if test.check == "json":
        return "" if doc == {"message": "Hello, World!"} else f"document {doc!r}"
    worlds = [doc] if test.check == "db" else doc
    if test.check != "db" and (not isinstance(doc, list) or len(doc) != test.n):
        return f"expected a list of {test.n} rows, got {str(doc)[:200]}"
    for w in worlds:
        if not isinstance(w, dict) or set(w) != {"id", "randomNumber"}:
            return f"row {w!r}: keys must be id and randomNumber"
        if not all(isinstance(w[k], int) and 1 <= w[k] <= 10000 for k in w):
            return f"row {w!r} out of 1..10000"
    if db is not None and test.check == "updates":
        # what the server answered must be what the database holds now (the cache
        # of cached queries is a snapshot: an earlier update may have changed a row)
        ids = ",".join(str(w["id"]) for w in worlds)
        stored = dict(
            tuple(map(int, line.split("|")))
            for line in db.psql(f"SELECT id, randomnumber FROM world WHERE id IN ({ids});").split()
        )
        wrong = [w for w in worlds if stored.get(w["id"]) != w["randomNumber"]]
        if wrong:
            return f"{len(wrong)} rows answered differ from the database (not persisted?): {wrong[:3]!r}"
    return ""


def check(server, test: Test, db: pg.Postgres | None) -> dict:
    """One request as TFB's verifier sends it; updates are tried twice so a lucky
    equal random number cannot pass as persisted."""
    out: dict = {"ok": False, "problem": ""}
    for _ in range(2 if test.check == "updates" else 1):
        r = server.request(test.path, timeout=15)
        out.update(
            status=r.status,
            content_type=r.headers.get("content-type", ""),
            server_header=r.headers.get("server", ""),
            date_header=bool(r.headers.get("date")),
            bytes=len(r.body),
        )
        problem = _problem(r.status, r.headers, r.body, test, db)
        if problem:
            out["problem"] = problem
            return out
    out["ok"] = True
    return out


def pipeline_script(directory: Path, depth: int) -> Path:
    """TFB's pipeline.lua: `depth` requests written at once on each connection."""
    path = directory / f"pipeline-{depth}.lua"
    path.write_text(
        "init = function(args)\n"
        "  local r = {}\n"
        f"  for i = 1, {depth} do r[i] = wrk.format() end\n"
        "  req = table.concat(r)\n"
        "end\n"
        "request = function() return req end\n"
    )
    return path
