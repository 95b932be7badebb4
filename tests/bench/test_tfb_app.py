"""The TFB suite's Catzilla app answers what TechEmpower's verifier accepts, on a real
server against a real PostgreSQL (started and seeded by benchmarks/harness/pg.py).

Both database sides are checked: async handlers with asyncpg and sync handlers
with psycopg 3. Skipped, with the reason, where PostgreSQL or a driver is not
installed. About 10 s, most of it initdb.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator

import pytest

from benchmarks.harness import pg, tfb
from benchmarks.harness.servers import Server, start_server

pytest.importorskip("jinja2", reason="jinja2 is not installed: the fortunes template needs it (catzilla[jinja2])")


@pytest.fixture(scope="module")
def db() -> Iterator[pg.Postgres]:
    if pg.find_binaries() is None:
        pytest.skip("PostgreSQL is not installed (Debian's `postgresql`): the TFB app needs a database")
    with pg.postgres(install=False) as database:
        yield database


@pytest.fixture(scope="module", params=["asyncpg", "psycopg"])
def server(request: pytest.FixtureRequest, db: pg.Postgres) -> Iterator[Server]:
    pytest.importorskip(request.param, reason=f"{request.param} is not installed (benchmarks/peers/tfb-catzilla.txt)")
    spec = next(s for s in tfb.servers() if s.name == ("catzilla" if request.param == "asyncpg" else "catzilla-sync"))
    # the modules this interpreter sees (a build on PYTHONPATH included), not the bench's site
    env = {**db.env(), "TFB_DRIVER": request.param, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    with start_server(spec, python=sys.executable, cpu=None, env=env, ready_path="/json", ready_timeout=30) as srv:
        yield srv
    assert srv.exit_code == 0, srv.log_tail()


def _get(srv: Server, path: str):
    r = srv.request(path, timeout=10)
    assert r.status == 200, (path, r.body[:300])
    return r


@pytest.mark.parametrize("test", tfb.TESTS, ids=[t.name for t in tfb.TESTS])
def test_answer_is_tfb_valid(server: Server, db: pg.Postgres, test: tfb.Test) -> None:
    result = tfb.check(server, test, db)
    assert result["ok"], result["problem"]
    assert result["date_header"], "TFB requires a Date header"
    assert result["server_header"], "TFB requires a Server header"


def test_json_and_single_query(server: Server, db: pg.Postgres) -> None:
    r = _get(server, "/json")
    assert r.headers["content-type"] == "application/json"
    assert json.loads(r.body) == {"message": "Hello, World!"}
    world = json.loads(_get(server, "/db").body)
    stored = db.psql(f"SELECT randomnumber FROM world WHERE id = {world['id']};").strip()
    assert world["randomNumber"] == int(stored)


@pytest.mark.parametrize(
    "query, rows",
    [("", 1), ("?queries=", 1), ("?queries=foo", 1), ("?queries=0", 1), ("?queries=7", 7), ("?queries=501", 500)],
)
def test_queries_parameter_rules(server: Server, query: str, rows: int) -> None:
    """TFB: missing or non-integer counts as 1, then clamped to 1..500."""
    worlds = json.loads(_get(server, "/queries" + query).body)
    assert isinstance(worlds, list) and len(worlds) == rows
    assert all(set(w) == {"id", "randomNumber"} for w in worlds)
    assert len(json.loads(_get(server, "/cached-queries" + query.replace("queries", "count")).body)) == rows


def test_fortunes_escaped_sorted_with_the_added_row(server: Server) -> None:
    r = _get(server, "/fortunes")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.body.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page and "&lt;script&gt;alert(" in page
    assert "<tr><td>0</td><td>Additional fortune added at request time.</td></tr>" in page
    assert "フレームワークのベンチマーク" in page
    parser = tfb.TableRows()
    parser.feed(page)
    messages = [row[1] for row in parser.rows[1:]]
    assert len(messages) == 13 and messages == sorted(messages)


def test_updates_are_persisted(server: Server, db: pg.Postgres) -> None:
    before = dict(tuple(map(int, ln.split("|"))) for ln in db.psql("SELECT id, randomnumber FROM world;").split())
    worlds = json.loads(_get(server, "/updates?queries=20").body)
    assert len(worlds) == 20
    after = dict(tuple(map(int, ln.split("|"))) for ln in db.psql("SELECT id, randomnumber FROM world;").split())
    assert all(after[w["id"]] == w["randomNumber"] for w in worlds)
    changed = {i for i in after if after[i] != before[i]}
    assert changed <= {w["id"] for w in worlds}  # only the rows answered were written
    assert len(changed) >= 15  # a new random number equals the old one 1 time in 10,000


def test_plaintext_pipelined(server: Server) -> None:
    """16 requests in one write, as TFB's plaintext test sends them: 16 answers, in order."""
    req = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(req * 16)
        data = b""
        while data.count(b"Hello, World!") < 16:
            chunk = s.recv(65536)
            assert chunk, data[-200:]
            data += chunk
    answers = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 16
    assert all(a.endswith(b"\r\n\r\nHello, World!") and b"content-type: text/plain" in a.lower() for a in answers)
