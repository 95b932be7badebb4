"""``/metrics`` in the Prometheus text format (version 0.0.4).

Request counts and latency histograms are kept in C per route
(csrc/server/cz_metrics.h) and only read here, when scraped. Every series
carries a ``worker`` label: with ``workers > 1`` each worker process answers
the scrapes that reach it (the port is shared with SO_REUSEPORT) with its own
figures, so a Prometheus job sums over ``worker`` (``sum without (worker)``);
``catzilla_worker_info`` tells which process a worker slot is now and
``catzilla_worker_restarts_total`` how often its slot was restarted.
"""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING, Any

from catzilla import memory, serving

if TYPE_CHECKING:
    from catzilla.app import Catzilla

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER")
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
UNMATCHED = memory.UNMATCHED_ROUTE  # route label of requests no route took (404, 405, ...)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))


class Writer:
    def __init__(self, worker: str) -> None:
        self.lines: list[str] = []
        self.base = f'worker="{escape(worker)}"'

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        extra = "".join(f',{k}="{escape(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{self.base}{extra}}} {number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(app: Catzilla) -> str:
    """The current figures of this process, as Prometheus text."""
    server = app._server
    w = Writer(str(serving.worker_slot()))
    raw = server.metrics()
    table = server.route_table()
    counters = server.counters()

    w.family("catzilla_worker_info", "gauge", "This worker: its slot and process id.")
    w.sample("catzilla_worker_info", 1, pid=str(os.getpid()))
    w.family("catzilla_worker_restarts_total", "counter", "Times the supervisor restarted this worker's slot.")
    w.sample("catzilla_worker_restarts_total", serving.worker_restarts())

    # -- requests, per route (kept in C) --------------------------------------------------
    w.family("catzilla_requests_total", "counter", "Requests answered, by route template, method and status class.")
    histograms: list[tuple[str, str, tuple[int, ...], int]] = []
    for index, counts, buckets, sum_ns in raw["routes"]:
        method, route = table.get(index, ("", UNMATCHED)) if index >= 0 else ("", UNMATCHED)
        for m, name in enumerate(METHODS):
            for c, cls in enumerate(CLASSES):
                n = counts[m * len(CLASSES) + c]
                if n:
                    w.sample("catzilla_requests_total", n, route=route, method=name, status=cls)
        histograms.append((route, method or "ANY", buckets, sum_ns))
    w.family(
        "catzilla_request_duration_seconds",
        "histogram",
        "Time from dispatch to the whole answer queued, per route template and its method.",
    )
    bounds = [b / 1e9 for b in raw["bounds_ns"]]
    for route, method, buckets, sum_ns in histograms:
        total = 0
        for bound, n in zip([*bounds, float("inf")], buckets, strict=True):
            total += n
            w.sample("catzilla_request_duration_seconds_bucket", total, route=route, method=method, le=number(bound))
        w.sample("catzilla_request_duration_seconds_sum", sum_ns / 1e9, route=route, method=method)
        w.sample("catzilla_request_duration_seconds_count", total, route=route, method=method)

    render_route_memory(w, raw_memory=server.route_memory(), table=table)

    # -- server ------------------------------------------------------------------------
    in_flight = max(0, counters["requests"] - raw["answered"] - counters["abandoned"]) if app.port is not None else 0
    w.family("catzilla_requests_in_flight", "gauge", "Requests read and not answered yet.")
    w.sample("catzilla_requests_in_flight", in_flight)
    w.family("catzilla_requests_abandoned_total", "counter", "Requests whose client left before the answer.")
    w.sample("catzilla_requests_abandoned_total", counters["abandoned"])
    w.family("catzilla_connections", "gauge", "Open client connections.")
    w.sample("catzilla_connections", counters["active_connections"])
    for key, help_text in (
        ("accepted", "Connections accepted."),
        ("rejected", "Connections refused (over max_connections or stopping)."),
        ("evicted", "Stalled connections closed for a new client or for memory."),
    ):
        w.family(f"catzilla_connections_{key}_total", "counter", help_text)
        w.sample(f"catzilla_connections_{key}_total", counters[key])
    w.family("catzilla_received_bytes_total", "counter", "Bytes read from clients.")
    w.sample("catzilla_received_bytes_total", counters["bytes_in"])
    w.family("catzilla_sent_bytes_total", "counter", "Bytes sent to clients.")
    w.sample("catzilla_sent_bytes_total", counters["bytes_out"])
    w.family("catzilla_output_held_bytes", "gauge", "Response bytes held for slow clients now.")
    w.sample("catzilla_output_held_bytes", counters["output_held"])

    # -- memory ------------------------------------------------------------------------------
    render_memory(w, app._memory)
    return w.text()


def render_route_memory(w: Writer, raw_memory: dict[str, Any], table: dict[int, tuple[str, str]]) -> None:
    """Memory per route (``route_memory``, kept in C): nothing when it is off."""
    if not raw_memory["enabled"]:
        return
    # process scope: the interpreter's blocks from the process heap are one more purpose
    with_python = bool(raw_memory["python"])
    names = [*raw_memory["purposes"], *(["python"] if with_python else [])]
    rows = [
        (*memory.route_label(table, index), requests, peak, [*allocated, *([python] if with_python else [])])
        for index, requests, peak, allocated, python in raw_memory["routes"]
    ]
    w.family(
        "catzilla_route_allocated_bytes_total",
        "counter",
        "Bytes allocated for the route's requests, per purpose; python: the interpreter's (docs/memory.md).",
    )
    for method, route, _, _, allocated in rows:
        for purpose, n in zip(names, allocated, strict=True):
            w.sample("catzilla_route_allocated_bytes_total", n, route=route, method=method, purpose=purpose)
    w.family("catzilla_route_memory_requests_total", "counter", "Requests whose memory was measured, per route.")
    for method, route, requests, _, _ in rows:
        w.sample("catzilla_route_memory_requests_total", requests, route=route, method=method)
    w.family(
        "catzilla_route_peak_in_flight_bytes",
        "gauge",
        "The most one request of the route held at once through the C core's allocator.",
    )
    for method, route, _, peak, _ in rows:
        w.sample("catzilla_route_peak_in_flight_bytes", peak, route=route, method=method)


def render_memory(w: Writer, mem: memory.AppMemory) -> None:
    stats = mem.allocator.stats()
    w.family("catzilla_memory_allocator_info", "gauge", "The allocator in use (jemalloc or malloc).")
    w.sample("catzilla_memory_allocator_info", 1, allocator=mem.backend)
    for key, help_text in (
        ("allocated", "Live bytes allocated, per purpose."),
        ("active", "Bytes of pages backing live blocks, per purpose (malloc: = allocated)."),
        ("resident", "Resident bytes, per purpose (malloc: = allocated)."),
        ("dirty", "Unused pages not yet returned to the OS, per purpose (malloc: 0)."),
    ):
        name = f"catzilla_memory_{key}_bytes"
        w.family(name, "gauge", help_text)
        for purpose, figures in stats["purposes"].items():
            w.sample(name, figures[key], purpose=purpose)
    w.family("catzilla_memory_fragmentation_ratio", "gauge", "External fragmentation, 0..1 (see docs/memory.md).")
    w.sample("catzilla_memory_fragmentation_ratio", min(1.0, max(0.0, stats["fragmentation_percent"] / 100.0)))
    w.family("catzilla_memory_tuning_actions_total", "counter", "Memory tuning actions taken, by kind.")
    for kind, n in sorted(mem.action_counts().items()):
        w.sample("catzilla_memory_tuning_actions_total", n, action=kind)
    rss = memory.process_rss_bytes()
    if rss is not None:
        w.family("catzilla_process_resident_memory_bytes", "gauge", "Resident set size of this process.")
        w.sample("catzilla_process_resident_memory_bytes", rss)
    w.family("catzilla_python_gc_collections_total", "counter", "Python garbage collections, per generation.")
    gc_stats = gc.get_stats()
    for gen, s in enumerate(gc_stats):
        w.sample("catzilla_python_gc_collections_total", s["collections"], generation=str(gen))
    w.family("catzilla_python_gc_collected_total", "counter", "Objects the Python GC collected, per generation.")
    for gen, s in enumerate(gc_stats):
        w.sample("catzilla_python_gc_collected_total", s["collected"], generation=str(gen))


def endpoint(app: Catzilla) -> Any:
    from catzilla.response import Response

    def metrics() -> Response:
        return Response(render(app), media_type=CONTENT_TYPE)

    return metrics
