"""The access log (formatted in C, batched to the catzilla.access logger),
/metrics in the Prometheus text format (checked with prometheus_client's
parser), per-worker labels, and logging configuration."""

from __future__ import annotations

import io
import json
import logging
import re
import time

import httpx
import pytest

from catzilla import Catzilla, logs
from tests.server.conftest import free_port, serve_in_thread, spawn_server

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client (scripts/requirements-dev.txt)")

CLF = re.compile(r'^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] "(\S+) (\S+) HTTP/1\.(\d)" (\d{3}) (\d+|-)$')


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        # not serve_in_thread's readiness probe
        return [line for r in self.records for line in r.getMessage().split("\n") if "/__ready__" not in line]


@pytest.fixture
def access_records():
    logger = logging.getLogger(logs.ACCESS_LOGGER)
    handler = Lines()
    old_level, old_prop = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_prop


def hello_app(**options) -> Catzilla:
    app = Catzilla(**options)

    @app.get("/hello")
    def hello():
        return {"hello": "world"}

    @app.get("/users/{user_id}")
    async def user(user_id: int):
        return {"id": user_id}

    @app.post("/echo")
    def echo(body: dict):
        return body

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    return app


def wait_for(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def families(text: str) -> dict:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def sample_value(fams: dict, family: str, name: str | None = None, **labels: str) -> float:
    name = name or family
    for s in fams[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError(f"{name}{labels}")


# ---- access log -------------------------------------------------------------------------------


def test_access_log_common_format(access_records) -> None:
    app = hello_app(access_log=True)
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as c:
        assert c.get("/hello?x=1").status_code == 200
        assert c.get("/nope").status_code == 404
        assert c.post("/echo", json={"a": 1}).status_code == 200
        assert c.get("/boom").status_code == 500
        wait_for(lambda: len(access_records.lines()) >= 4)
    lines = access_records.lines()
    parsed = [CLF.match(line) for line in lines]
    assert all(parsed), lines
    got = [(m.group(1), m.group(3), m.group(4), int(m.group(6))) for m in parsed]  # type: ignore[union-attr]
    assert got == [
        ("127.0.0.1", "GET", "/hello?x=1", 200),
        ("127.0.0.1", "GET", "/nope", 404),
        ("127.0.0.1", "POST", "/echo", 200),
        ("127.0.0.1", "GET", "/boom", 500),
    ]
    assert all(int(m.group(7)) > 0 for m in parsed)  # type: ignore[union-attr]


def pipeline_hello(port: int, n: int) -> None:
    """`n` requests in one write on one connection, and their `n` answers read."""
    import socket

    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * n)
        got = b""
        while got.count(b"HTTP/1.1 200") < n:
            got += s.recv(65536)


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_access_log_is_batched_not_per_request() -> None:
    """Many requests in one loop iteration (pipelined) reach the default handler's
    stream as a few writes, not one per request."""
    logger = logging.getLogger(logs.ACCESS_LOGGER)
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    try:
        app = hello_app(access_log=True)
        with serve_in_thread(app) as srv:
            pipeline_hello(srv.port, 50)
            wait_for(lambda: stream.getvalue().count("GET /hello ") >= 50)
    finally:
        logger.handlers, logger.level, logger.propagate = saved
    lines = [ln for ln in stream.getvalue().splitlines() if "/__ready__" not in ln]
    assert len(lines) == 50 and all(CLF.match(ln) for ln in lines), lines[:3]
    assert stream.writes <= 3  # batches (64 KiB, or every timer sweep), not one write per request


def test_a_prefixing_formatter_sees_every_line(access_records) -> None:
    """A configuration that is not the bare line (here a handler collecting records)
    gets one record per request, so a prefix or a filter applies to each."""
    app = hello_app(access_log=True)
    with serve_in_thread(app) as srv:
        pipeline_hello(srv.port, 20)
        wait_for(lambda: len(access_records.lines()) >= 20)
    records = [r for r in access_records.records if "/__ready__" not in r.getMessage()]
    assert len(records) == 20
    assert all("\n" not in r.getMessage() and r.access_lines == 1 for r in records)  # type: ignore[attr-defined]
    prefixed = logging.Formatter("access: %(message)s")
    assert all(CLF.match(prefixed.format(r)[len("access: ") :]) for r in records)


def test_access_log_json_lines_escape_the_target(access_records) -> None:
    app = hello_app(access_log=True, access_log_format="json")
    with serve_in_thread(app) as srv:
        import socket

        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(b'GET /nope?q="\\x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            while s.recv(65536):
                pass
        with httpx.Client(base_url=srv.base_url) as c:
            c.get("/users/7")
        wait_for(lambda: len(access_records.lines()) >= 2)
    entries = [json.loads(line) for line in access_records.lines()]
    assert entries[0]["path"] == '/nope?q="\\x'
    assert entries[0]["status"] == 404
    assert entries[1]["method"] == "GET" and entries[1]["path"] == "/users/7" and entries[1]["status"] == 200
    assert entries[1]["client"] == "127.0.0.1" and entries[1]["http"] == "1.1"
    assert entries[1]["bytes"] > 0 and entries[1]["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entries[1]["time"])


def test_access_log_custom_formatter_gets_fields(access_records) -> None:
    app = hello_app(access_log=True, access_log_format=lambda f: f"{f['method']} {f['path']} -> {f['status']}")
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as c:
        c.get("/hello")
        wait_for(lambda: len(access_records.lines()) >= 1)
    assert access_records.lines() == ["GET /hello -> 200"]


def test_access_log_off_by_default(access_records) -> None:
    app = hello_app()
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as c:
        c.get("/hello")
        time.sleep(0.1)
    assert access_records.records == []


@pytest.fixture
def access_logger():
    """The catzilla.access logger with its handlers, level and propagation put back after the test."""
    logger = logging.getLogger(logs.ACCESS_LOGGER)
    saved = (logger.handlers[:], logger.filters[:], logger.level, logger.propagate)
    logger.handlers, logger.filters = [], []
    logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.handlers, logger.filters, logger.level, logger.propagate = saved


def test_access_sink_writes_a_plain_stream_directly(access_logger) -> None:
    """One plain handler: the batch goes to its stream as it is, as a record would have put it."""
    import io

    batch = '127.0.0.1 - - [x] "GET /a%20b HTTP/1.1" 200 5\n127.0.0.1 - - [x] "GET / HTTP/1.1" 200 -\n'
    sink = logs.AccessSink()
    direct = io.StringIO()
    handler = logging.StreamHandler(direct)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_logger.addHandler(handler)
    access_logger.propagate = False
    assert sink.direct_handler() is handler
    sink(batch, 2)
    assert direct.getvalue() == batch
    # what the record path writes for the same batch: the same text
    access_logger.addFilter(lambda record: True)  # a filter needs records
    assert sink.direct_handler() is None
    sink(batch, 2)
    assert direct.getvalue() == batch + batch
    access_logger.filters = []
    # a formatter that adds anything, or another handler the record would reach: records
    for change in (
        lambda: handler.setFormatter(logging.Formatter("%(levelname)s %(message)s")),
        lambda: setattr(access_logger, "propagate", True) or logging.getLogger("catzilla").addHandler(Lines()),
    ):
        handler.setFormatter(logging.Formatter("%(message)s"))
        change()
        assert sink.direct_handler() is None
    for h in logging.getLogger("catzilla").handlers[:]:
        if isinstance(h, Lines):
            logging.getLogger("catzilla").removeHandler(h)


def test_access_sink_record_carries_the_lines(access_records) -> None:
    sink = logs.AccessSink()
    logging.getLogger(logs.ACCESS_LOGGER).propagate = False
    sink("a 100%s\nb\n", 2)
    first, second = access_records.records  # one record per line, not %-formatted
    assert (first.getMessage(), second.getMessage()) == ("a 100%s", "b")
    assert first.access_lines == second.access_lines == 1  # type: ignore[attr-defined]


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        Catzilla(access_log_format="apache")
    with pytest.raises(ValueError):
        Catzilla(log_level="loud")
    with pytest.raises(TypeError):
        Catzilla(metrics="yes")  # type: ignore[arg-type]
    assert Catzilla(memory_dashboard=True).memory_dashboard == "/__catzilla__/memory"
    assert Catzilla(production=True).memory_dashboard is None


# ---- logging configuration ------------------------------------------------------------------------------


def test_configure_logging_dict_json_yaml(tmp_path) -> None:
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in ("catzilla", logs.ERROR_LOGGER, logs.ACCESS_LOGGER)
    }
    try:
        logs.configure_logging(log_level="warning")
        assert logging.getLogger("catzilla").level == logging.WARNING
        assert logging.getLogger(logs.ACCESS_LOGGER).handlers
        cfg = {"version": 1, "disable_existing_loggers": False, "loggers": {logs.ACCESS_LOGGER: {"level": "ERROR"}}}
        (tmp_path / "log.json").write_text(json.dumps(cfg))
        logs.configure_logging(log_config=str(tmp_path / "log.json"))
        assert logging.getLogger(logs.ACCESS_LOGGER).level == logging.ERROR
        pytest.importorskip("yaml")
        (tmp_path / "log.yaml").write_text(
            "version: 1\ndisable_existing_loggers: false\nloggers:\n  catzilla.access:\n    level: DEBUG\n"
        )
        logs.configure_logging(log_config=tmp_path / "log.yaml")
        assert logging.getLogger(logs.ACCESS_LOGGER).level == logging.DEBUG
        logs.configure_logging(access_log=False)
        assert not logging.getLogger(logs.ACCESS_LOGGER).handlers
    finally:
        for n, (handlers, level, prop) in saved.items():
            lg = logging.getLogger(n)
            lg.handlers, lg.level, lg.propagate = handlers, level, prop


# ---- metrics ----------------------------------------------------------------------------------------


def test_metrics_prometheus_format_and_counts() -> None:
    app = hello_app(metrics=True)
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as c:
        for _ in range(3):
            assert c.get("/hello").status_code == 200
        assert c.get("/users/5").status_code == 200
        assert c.post("/echo", json={"a": 1}).status_code == 200
        assert c.get("/boom").status_code == 500
        assert c.get("/nope").status_code == 404
        assert c.delete("/hello").status_code == 405
        r = c.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        fams = families(r.text)
        # the scrape sees the requests before it (not itself: its answer is not queued yet)
        req = "catzilla_requests"
        assert sample_value(fams, req, "catzilla_requests_total", route="/hello", method="GET", status="2xx") == 3
        assert sample_value(fams, req, "catzilla_requests_total", route="/users/{user_id}", status="2xx") == 1
        assert sample_value(fams, req, "catzilla_requests_total", route="/echo", method="POST", status="2xx") == 1
        assert sample_value(fams, req, "catzilla_requests_total", route="/boom", status="5xx") == 1
        # /nope and serve_in_thread's readiness probe; the 405 has no route either
        assert sample_value(fams, req, "catzilla_requests_total", route="<unmatched>", method="GET", status="4xx") == 2
        assert (
            sample_value(fams, req, "catzilla_requests_total", route="<unmatched>", method="DELETE", status="4xx") == 1
        )
        hist = fams["catzilla_request_duration_seconds"]
        assert hist.type == "histogram"
        count = sample_value(fams, hist.name, "catzilla_request_duration_seconds_count", route="/hello")
        inf = sample_value(fams, hist.name, "catzilla_request_duration_seconds_bucket", route="/hello", le="+Inf")
        assert count == inf == 3
        assert sample_value(fams, hist.name, "catzilla_request_duration_seconds_sum", route="/hello") > 0
        assert sample_value(fams, "catzilla_connections", "catzilla_connections") >= 1
        assert sample_value(fams, "catzilla_received_bytes", "catzilla_received_bytes_total") > 0
        assert sample_value(fams, "catzilla_sent_bytes", "catzilla_sent_bytes_total") > 0
        assert sample_value(fams, "catzilla_requests_in_flight", "catzilla_requests_in_flight") == 1  # the scrape
        for purpose in ("request", "response", "cache", "static", "task", "general"):
            for fig in ("allocated", "active", "resident", "dirty"):
                name = f"catzilla_memory_{fig}_bytes"
                assert sample_value(fams, name, name, purpose=purpose) >= 0
        assert (
            0 <= sample_value(fams, "catzilla_memory_fragmentation_ratio", "catzilla_memory_fragmentation_ratio") <= 1
        )
        assert (
            sample_value(fams, "catzilla_process_resident_memory_bytes", "catzilla_process_resident_memory_bytes") > 0
        )
        assert (
            sample_value(fams, "catzilla_python_gc_collections", "catzilla_python_gc_collections_total", generation="0")
            >= 0
        )
        assert sample_value(fams, "catzilla_worker_restarts", "catzilla_worker_restarts_total") == 0
        assert (
            sample_value(
                fams, "catzilla_memory_allocator_info", "catzilla_memory_allocator_info", allocator=app._memory.backend
            )
            == 1
        )
        # every series says which worker it is from
        assert all(s.labels.get("worker") == "0" for f in fams.values() for s in f.samples)
        second = families(c.get("/metrics").text)
        assert sample_value(second, req, "catzilla_requests_total", route="/metrics", status="2xx") == 1
    assert "/metrics" not in {r.path for r in app.routes}
    assert "/metrics" not in app.openapi()["paths"]


def test_metrics_off_by_default() -> None:
    app = hello_app()
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as c:
        assert c.get("/metrics").status_code == 404
    fams = families(app.get_metrics())  # still renderable: no request counts
    assert "catzilla_memory_allocated_bytes" in fams
    assert not list(fams["catzilla_requests"].samples)


def test_metrics_per_worker_labels() -> None:
    """workers=2: each worker answers the scrapes that reach it with its own figures, labelled worker="<slot>"."""
    port = free_port()
    code = (
        "from catzilla import Catzilla\n"
        "app = Catzilla(metrics=True)\n"
        "@app.get('/hello')\n"
        "def hello():\n"
        "    return {'ok': True}\n"
    )
    srv = spawn_server(code, listen="workers=2", port=port)
    try:
        seen: dict[str, str] = {}
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:  # a new connection: any worker
                c.get("/hello")
                fams = families(c.get("/metrics").text)
            info = next(iter(fams["catzilla_worker_info"].samples))
            seen[info.labels["worker"]] = info.labels["pid"]
        assert set(seen) == {"0", "1"}
        assert len(set(seen.values())) == 2
    finally:
        assert srv.stop() == 0
