"""The http-desync-guardian corpus, case by case.

Severe: 400 and the connection closed. Ambiguous: the treatment recorded in
desync_ambiguous.json and explained in docs/security.md. Either way the
server goes on serving. Only the head is sent (the corpus has no bodies); the
write side is then shut, so a request that waits for its declared body ends
without a response: "accepted" means the server framed the request as it
declared and answered or waited, "refused" a 400 and a closed connection.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.hardening.conftest import served_normally
from tests.hardening.desync import Case, load, missing
from tests.server.conftest import ServerProcess

if (why := missing()) is not None:
    pytest.skip(why, allow_module_level=True)

CASES = load()
AMBIGUOUS = json.loads((Path(__file__).parent / "desync_ambiguous.json").read_text())


def outcome(port: int, raw: bytes) -> tuple[str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if data.startswith(b"HTTP/1.1 400 "):
        assert data.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in data
        return "refused", data
    return "accepted", data


def by_tier(tier: str) -> list[Case]:
    return [c for c in CASES if c.tier == tier]


def test_corpus_is_there() -> None:
    assert len(by_tier("Severe")) >= 50 and len(by_tier("Ambiguous")) >= 50


@pytest.mark.parametrize("case", by_tier("Severe"), ids=lambda c: c.id)
def test_severe_is_refused_and_closed(server: ServerProcess, case: Case) -> None:
    got, data = outcome(server.port, case.raw)
    assert got == "refused", f"{case.reason}: {data[:120]!r}"
    assert served_normally(server.port)


@pytest.mark.parametrize("case", by_tier("Ambiguous"), ids=lambda c: c.id)
def test_ambiguous_is_treated_as_documented(server: ServerProcess, case: Case) -> None:
    got, data = outcome(server.port, case.raw)
    assert got == AMBIGUOUS[case.id], f"{case.reason}: {data[:120]!r}"
    if got == "accepted":
        assert data == b"" or data.startswith(b"HTTP/1.1 200 ")
    assert served_normally(server.port)
