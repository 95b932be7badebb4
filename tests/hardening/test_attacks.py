"""The attacks of benchmarks/attacks.py, small and bounded, with the goals as assertions.

Clients that go away while an async handler waits: the handler is cancelled
(its finally runs) and the connection's slot is free at once. Slowloris,
slow body and slow read, with more attackers than max_connections: a normal
client is served every time, quickly, and the server's RSS stays bounded.
Every socket operation has a timeout, and a server that does not stop is
killed: a failure here is quick, never a hang. The timing goals themselves
(p95 < 100 ms at 1,000 connections) are the harness's: `make test-attacks`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from benchmarks import attacks
from benchmarks.attacks import AttackServer, Control, RequestFailed, Settings

# Under ASan (make test-asan preloads it) everything is slower, and its shadow
# memory and quarantine are in the RSS: the latency bound is scaled and the RSS
# bound left out there.
ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
P95_BOUND_S = 0.25 * (4 if ASAN else 1)
RSS_BOUND = 96 * attacks.MiB
SLOW = Settings(connections=250, max_connections=200, duration=3.0, rate=20.0, timeout=2.0, settle=0.5)


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    attacks.raise_fd_limit()
    with attacks.client_pool() as p:
        yield p


def _summary(r: attacks.ScenarioResult) -> str:
    return attacks.table([r]) + "\n" + attacks.details(r)


# ---- clients that go away ----------------------------------------------------------------------------


async def _abandon_and_watch(port: int, n: int, within: float) -> tuple[attacks.AbandonStats, attacks.Counters | None]:
    control = await Control(port).open()
    try:
        abandoned = await attacks.abandon(port, n, control)
        return abandoned, await attacks.watch_cancellations(control, abandoned.started or n, within)
    finally:
        await control.close()


def test_abandoned_async_handlers_are_cancelled() -> None:
    """150 requests to an async handler that sleeps for an hour, then the clients
    close: each handler gets CancelledError and runs its finally, within 3 s, and
    no connection is left in CLOSE-WAIT."""
    attacks.raise_fd_limit()
    n = 150
    with AttackServer({"max_connections": 200}) as srv:
        abandoned, counters = asyncio.run(_abandon_and_watch(srv.port, n, within=3.0))
        close_wait = attacks.close_wait_count(srv.port)
    assert abandoned.sent == n and abandoned.started == n, f"not every request reached its handler: {abandoned}"
    assert counters is not None, "the control connection could not read /counters"
    assert counters.cancelled == n, (
        f"{counters.cancelled} of {n} handlers of abandoned requests got CancelledError within 3 s ({counters})"
    )
    assert counters.finally_ran == n, f"{counters.finally_ran} of {n} handlers ran their finally ({counters})"
    assert close_wait == 0, f"{close_wait} connections in CLOSE-WAIT 4 s after their clients closed"


def test_abandoned_requests_release_their_slots() -> None:
    """max_connections=200, 200 requests to the waiting handler, then the clients
    close: 5 new requests are all answered within a couple of seconds."""
    attacks.raise_fd_limit()
    with AttackServer({"max_connections": 200}) as srv:
        abandoned = asyncio.run(attacks.abandon(srv.port, 200, control=None))
        closed_at = time.monotonic()
        time.sleep(0.5)  # the server's time to see the FINs
        answered, failures = 0, []
        for _ in range(5):
            try:
                status, _ = attacks.http_get(srv.port, "/", timeout=max(0.1, closed_at + 3.0 - time.monotonic()))
            except (RequestFailed, OSError) as e:
                failures.append(str(e))
                continue
            if status == 200:
                answered += 1
            else:
                failures.append(f"status {status}")
        close_wait = attacks.close_wait_count(srv.port)
    assert answered == 5, (
        f"{answered} of 5 new requests answered within 3 s after {abandoned.sent} abandoned ones "
        f"(max_connections=200); failures: {failures}; {close_wait} connections in CLOSE-WAIT"
    )
    assert close_wait == 0, f"{close_wait} connections still in CLOSE-WAIT"


# ---- slow connections at the connection limit ------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["slowloris", "slow-body", "slow-read"])
def test_normal_clients_are_served_during_a_slow_attack(scenario: str, pool: ProcessPoolExecutor) -> None:
    """250 attackers against max_connections=200: a normal client, with a new
    connection per request and with keep-alive, has no failure and a p95 under
    250 ms; under slow read the server's RSS grows less than 96 MiB."""
    r = attacks.run_scenario(scenario, SLOW, pool)
    unmet = []  # every goal missed, not only the first
    for c in r.clients:
        p95 = c.percentile(95)
        if c.failed or not c.requests:
            unmet.append(f"{c.mode} client: {c.failed} of {c.requests} requests failed")
        if p95 is not None and p95 >= P95_BOUND_S:  # none answered: said above
            unmet.append(f"{c.mode} client: p95 {p95 * 1000:.0f} ms")
    if scenario == "slow-read" and not ASAN and r.rss_above_idle >= RSS_BOUND:
        unmet.append(f"server RSS grew {r.rss_above_idle / attacks.MiB:.0f} MiB above idle")
    assert not unmet, "; ".join(unmet) + "\n" + _summary(r)
