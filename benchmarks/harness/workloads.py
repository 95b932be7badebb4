"""The workloads: the same requests and the same expected bytes for every server."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .servers import _load_payload


def _compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# ~200 bytes and ~10 KB JSON request bodies, compact, so an echo answers the same bytes.
ECHO_SMALL = _compact(
    {
        "id": 12345,
        "name": "Catzilla Benchmark",
        "email": "bench@example.com",
        "active": True,
        "roles": ["admin", "editor", "viewer"],
        "address": {"street": "123 Main Street", "city": "Springfield", "zip": "12345", "country": "US"},
        "score": 9876,
    }
)
# The framework target's route: two typed query parameters and a pydantic body, echoed as the model.
TYPED_PATH = "/items?q=abc&limit=5"
TYPED_BODY = b'{"name":"widget","price":9.5,"tags":["a","b"]}'
ECHO_10K = _compact(
    {
        "batch": "bench-10k",
        "items": [
            {"id": i, "name": f"item-{i:04d}", "qty": (i * 7) % 100, "active": i % 2 == 0, "tags": ["x", "y"]}
            for i in range(147)
        ],
    }
)


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    path: str
    method: str = "GET"
    body: bytes | None = None
    connections: int = 64
    close: bool = False  # "Connection: close": a new connection per request
    expect: bytes = b""
    only: tuple[str, ...] = ()  # the servers whose apps have this route (empty: all)
    server_env: tuple[tuple[str, str], ...] = ()  # for the server process: routes most workloads do without

    @property
    def headers(self) -> tuple[str, ...]:
        return ("Connection: close",) if self.close else ()

    def describe(self) -> str:
        extra = f", {len(self.body)} B body" if self.body else ""
        ka = ", Connection: close" if self.close else ""
        return f"{self.method} {self.path} -c{self.connections}{extra}{ka}"


def _workloads() -> list[Workload]:
    payload = _load_payload()
    hello = _compact(payload.HELLO)
    return [
        Workload("hello", "hello JSON", "/", expect=hello),
        Workload("path", "path parameter", "/users/12345", expect=b'{"user_id":12345}'),
        Workload("query", "query parameters", "/search?q=x&limit=10", expect=b'{"q":"x","limit":10}'),
        Workload("echo_small", "JSON POST echo ~200 B", "/echo", "POST", ECHO_SMALL, expect=ECHO_SMALL),
        Workload("echo_10k", "JSON POST echo ~10 KB", "/echo", "POST", ECHO_10K, expect=ECHO_10K),
        Workload("large", "100 KB JSON response", "/large", expect=_compact(payload.LARGE)),
        Workload("async", "async handler (await asyncio.sleep(0))", "/async", expect=hello),
        Workload("c256", "hello JSON, 256 connections", "/", connections=256, expect=hello),
        Workload("noka", "hello JSON, keep-alive off", "/", close=True, expect=hello),
        Workload(
            "typed",
            "typed route: 2 query params + pydantic body",
            TYPED_PATH,
            "POST",
            TYPED_BODY,
            expect=TYPED_BODY,
            only=("catzilla", "fastapi"),
            server_env=(("BENCH_TYPED", "1"),),
        ),
    ]


WORKLOADS: list[Workload] = _workloads()
BY_NAME = {w.name: w for w in WORKLOADS}


def verify(server, w: Workload) -> dict:
    """One request as the load will send it: status 200, JSON content type, the expected document.

    `identical` tells whether the bytes are exactly the expected ones; a
    different document (not just different bytes) is a failure.
    """
    headers = {"Content-Type": "application/json"} if w.body is not None else {}
    if w.close:
        headers["Connection"] = "close"
    r = server.request(w.path, method=w.method, body=w.body, headers=headers, timeout=10)
    out = {
        "status": r.status,
        "content_type": r.headers.get("content-type", ""),
        "bytes": len(r.body),
        "expected_bytes": len(w.expect),
        "identical": r.body == w.expect,
        "connection_header": r.headers.get("connection", ""),
        "ok": False,
        "problem": "",
    }
    try:
        same_doc = json.loads(r.body) == json.loads(w.expect)
    except ValueError:
        same_doc = False
    if r.status != 200:
        out["problem"] = f"status {r.status}: {r.body[:200]!r}"
    elif not out["content_type"].startswith("application/json"):
        out["problem"] = f"content-type {out['content_type']!r}"
    elif not same_doc:
        out["problem"] = f"unexpected body ({len(r.body)} B): {r.body[:200]!r}"
    else:
        out["ok"] = True
    return out
