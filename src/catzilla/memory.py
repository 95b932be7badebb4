"""The app's memory: allocator choice, statistics, profiling and tuning.

Figures come from the C allocator layer (``catzilla._core.Allocator``):
jemalloc's own per-arena statistics, or the malloc backend's per-purpose
accounting. See docs/memory.md for what each figure means.
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from catzilla import _core

MIB = 1024 * 1024
PURPOSES = ("request", "response", "cache", "static", "task", "general")
HISTORY_LIMIT = 1024
ACTIONS_LIMIT = 256

# auto_memory_tuning: jemalloc keeps freed pages "dirty" for this long before
# returning them to the OS (jemalloc's default is 10 s); muzzy pages go at once.
TUNED_DIRTY_DECAY_MS = 1000
TUNED_MUZZY_DECAY_MS = 0
# How often the tuner looks at the allocator.
TUNE_PERIOD_S = 1.0
# Free-but-held memory below this is not worth a purge or a malloc_trim.
PURGE_THRESHOLD_BYTES = 8 * MIB


ALLOCATORS = ("auto", "jemalloc", "mimalloc", "malloc")
SCOPES = ("process", "app")


def jemalloc_available() -> bool:
    """True when jemalloc is compiled into this build (never on Windows)."""
    return _core.jemalloc_compiled()


def available_allocators() -> list[str]:
    """The backends this build has: malloc always, then jemalloc and mimalloc when compiled in."""
    build = _core.build_info()
    return ["malloc"] + [name for name in ("jemalloc", "mimalloc") if build[f"{name}_compiled"]]


def resolve_allocator(allocator: object, use_jemalloc: object) -> tuple[str, bool]:
    """The backend to ask for and whether jemalloc counts as requested.

    ``use_jemalloc`` keeps the spec's meaning for ``allocator="auto"``:
    jemalloc, or malloc when False. A named backend wins over the default
    ``use_jemalloc=True``; ``allocator="jemalloc"`` with ``use_jemalloc=False``
    disagree (ValueError). ``CATZILLA_ALLOCATOR`` (``catzilla run
    --allocator``) and ``CATZILLA_JEMALLOC`` (``--no-jemalloc``) override what
    the app asks.
    """
    import os

    if allocator not in ALLOCATORS:
        raise ValueError(f"allocator must be one of {', '.join(map(repr, ALLOCATORS))}, got {allocator!r}")
    wants_je = check_bool("use_jemalloc", use_jemalloc)
    if allocator == "jemalloc" and not wants_je:
        raise ValueError("use_jemalloc=False and allocator='jemalloc' disagree: give one of them, or both agreeing")
    env = os.environ.get("CATZILLA_ALLOCATOR", "").strip().lower()
    if env:
        if env not in ALLOCATORS:
            raise ValueError(f"CATZILLA_ALLOCATOR must be one of {', '.join(ALLOCATORS)}, got {env!r}")
        allocator, wants_je = env, True
    if allocator in ("auto", "jemalloc"):
        wants_je = jemalloc_from_env(wants_je)
        return ("jemalloc" if wants_je else "malloc"), wants_je
    return str(allocator), False


def check_scope(scope: object) -> str:
    import os

    env = os.environ.get("CATZILLA_ALLOCATOR_SCOPE", "").strip().lower()
    if env:
        scope = env
    if scope not in SCOPES:
        raise ValueError(f"allocator_scope must be 'process' or 'app', got {scope!r}")
    return str(scope)


def process_rss_bytes() -> int | None:
    """Resident set size of this process, or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def jemalloc_from_env(requested: bool) -> bool:
    """``CATZILLA_JEMALLOC=0`` (``catzilla run --no-jemalloc``) turns jemalloc off
    whatever the app asks, ``=1`` on; unset: as the app asks."""
    import os

    raw = os.environ.get("CATZILLA_JEMALLOC")
    if raw is None or not raw.strip():
        return requested
    return raw.strip().lower() not in {"0", "false", "no", "off"}


def purpose_fragmentation(p: dict[str, Any]) -> float:
    """One purpose's share of active pages not holding live blocks, 0..100 (0 for malloc, where active = allocated)."""
    active = float(p.get("active", 0))
    if not active:
        return 0.0
    return max(0.0, min(100.0, 100.0 * (active - float(p["allocated"])) / active))


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")
    return value


def check_interval(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"memory_stats_interval must be a number of seconds > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"memory_stats_interval must be a number of seconds > 0, got {value!r}")
    return float(value)


def govern_process(allocator: _core.Allocator) -> str | None:
    """Put the interpreter's memory on `allocator`'s process heap; None when done, else why not.

    Small objects stay in pymalloc's pools, whose arenas then come from the
    allocator (measured faster than bypassing pymalloc, for the same share of
    the heap: docs/memory.md); ``CATZILLA_BYPASS_PYMALLOC=1`` sends every
    block to the allocator instead.
    """
    import tracemalloc

    if allocator.adopt_process_heap():
        return None  # opened at import (CATZILLA_PROCESS_HEAP), now this app's
    if tracemalloc.is_tracing():
        # tracemalloc.stop() would put back the allocator it saved, dropping our hooks.
        return "tracemalloc is tracing"
    return allocator.govern_process()


def leave_interpreter_alone() -> None:
    """A heap opened at import that no app has taken: new interpreter blocks go
    back to the allocators they had (its blocks are still freed by it)."""
    heap = _core.process_heap_stats()
    if heap is not None and heap["unclaimed"]:
        _core._process_heap_suspend(True)


UNMATCHED_ROUTE = "<unmatched>"  # requests no route took (404, 405, ...), as in /metrics


def route_label(table: dict[int, tuple[str, str]], index: int) -> tuple[str, str]:
    """(method, route template) of a router route index; -1 is no route."""
    method, route = table.get(index, ("", UNMATCHED_ROUTE)) if index >= 0 else ("", UNMATCHED_ROUTE)
    return method or "ANY", route


def route_memory(server: _core.Server) -> dict[str, dict[str, Any]]:
    """Per route ("GET /items/{id}"), what the C core allocated for its requests
    (docs/memory.md, "Memory per route"); empty when ``route_memory`` is off."""
    raw = server.route_memory()
    table = server.route_table()
    out: dict[str, dict[str, Any]] = {}
    for index, requests, peak, allocated, python in raw["routes"]:
        method, route = route_label(table, index)
        purposes = dict(zip(raw["purposes"], allocated, strict=True))
        if raw["python"]:  # process scope: the interpreter's blocks from the process heap
            purposes["python"] = python
        total = sum(purposes.values())
        out[f"{method} {route}"] = {
            "method": method,
            "route": route,
            "requests": requests,
            "allocated_bytes": total,
            "allocated_bytes_per_request": total / requests,
            "peak_in_flight_bytes": peak,
            "purposes": {
                name: {"allocated_bytes": n, "allocated_bytes_per_request": n / requests}
                for name, n in purposes.items()
            },
        }
    return out


@dataclass(frozen=True)
class Sample:
    time: float
    allocated_mb: float
    fragmentation_percent: float
    resident_mb: float
    # per purpose: {"allocated": bytes, "resident": bytes, "fragmentation_percent": ...}
    purposes: dict[str, dict[str, float]] = field(default_factory=dict)
    rss_bytes: int | None = None


@dataclass(frozen=True)
class Action:
    """A tuning action the app took on its allocator."""

    time: float
    action: str  # "set_decay", "decay", "purge", "malloc_trim"
    detail: str


class AppMemory:
    """The allocator bound to one app, and what is known about it."""

    def __init__(
        self,
        *,
        allocator: str,
        use_jemalloc: bool,
        scope: str,
        memory_profiling: bool,
        auto_memory_tuning: bool,
        memory_stats_interval: float,
    ) -> None:
        self.requested = use_jemalloc
        self.requested_allocator = allocator
        self.profiling = memory_profiling
        self.tuning = auto_memory_tuning
        self.interval = memory_stats_interval
        self.closed = False
        self.allocator = _core.Allocator(backend=allocator)
        self.fallback_reason: str | None = self.allocator.fallback_reason
        self.history: collections.deque[Sample] = collections.deque(maxlen=HISTORY_LIMIT)
        self.actions: collections.deque[Action] = collections.deque(maxlen=ACTIONS_LIMIT)
        self._action_counts: dict[str, int] = {}
        if self.fallback_reason:
            print(
                f"catzilla: {allocator} was requested but is not used ({self.fallback_reason}); using malloc",
                file=sys.stderr,
                flush=True,
            )
        self.scope_requested = scope
        self.scope_reason: str | None = None
        if scope == "process":
            self.scope_reason = govern_process(self.allocator)
        if not self.allocator.owns_process_heap:
            leave_interpreter_alone()
        if self.tuning:
            self.allocator.set_decay(TUNED_DIRTY_DECAY_MS, TUNED_MUZZY_DECAY_MS)
            self.record("set_decay", f"dirty pages {TUNED_DIRTY_DECAY_MS} ms, muzzy {TUNED_MUZZY_DECAY_MS} ms")
        self._monitor: _Monitor | None = None
        if self.profiling or self.tuning:
            self._monitor = _Monitor(self)

    @property
    def backend(self) -> str:
        return self.allocator.backend

    @property
    def jemalloc_enabled(self) -> bool:
        return self.backend == "jemalloc"

    @property
    def scope(self) -> str:
        """ "process" while this app's allocator governs the interpreter's memory, else "app"."""
        return "process" if self.allocator.owns_process_heap else "app"

    def close(self) -> None:
        self.closed = True
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None

    def after_fork(self) -> None:
        """In a forked worker: the parent's monitor thread did not come along."""
        if self._monitor is not None:
            self._monitor = _Monitor(self)

    # -- statistics ------------------------------------------------------------

    def record(self, action: str, detail: str) -> None:
        """Remember a tuning action (the memory page lists them; /metrics counts them)."""
        self.actions.append(Action(time.time(), action, detail))
        self._action_counts[action] = self._action_counts.get(action, 0) + 1

    def action_counts(self) -> dict[str, int]:
        return dict(self._action_counts)

    def sample(self) -> Sample:
        """A sample, kept in the profiling history."""
        s = self.sample_now()
        self.history.append(s)
        return s

    def sample_now(self) -> Sample:
        """A sample, not kept (the memory page's live point)."""
        raw = self.allocator.stats()
        return Sample(
            time=time.time(),
            allocated_mb=raw["allocated"] / MIB,
            fragmentation_percent=raw["fragmentation_percent"],
            resident_mb=raw["resident"] / MIB,
            purposes={
                name: {
                    "allocated": p["allocated"],
                    "active": p["active"],
                    "resident": p["resident"],
                    "dirty": p["dirty"],
                    "fragmentation_percent": purpose_fragmentation(p),
                }
                for name, p in raw["purposes"].items()
            },
            rss_bytes=process_rss_bytes(),
        )

    def trend(self) -> dict[str, Any] | None:
        if len(self.history) < 2:
            return None
        prev, last = self.history[-2], self.history[-1]
        delta = last.allocated_mb - prev.allocated_mb
        return {
            "allocated_mb_change": delta,
            "fragmentation_percent_change": last.fragmentation_percent - prev.fragmentation_percent,
            "resident_mb_change": last.resident_mb - prev.resident_mb,
            "seconds": last.time - prev.time,
            "direction": "growing" if delta > 0 else "shrinking" if delta < 0 else "stable",
            "samples": len(self.history),
        }

    def stats(self) -> dict[str, Any]:
        raw = self.allocator.stats()
        rss = process_rss_bytes()
        stats: dict[str, Any] = {
            "allocator": self.backend,
            "allocator_scope": self.scope,
            # why "process" was asked for but "app" is in effect (None otherwise)
            "allocator_scope_reason": self.scope_reason if self.scope_requested == "process" else None,
            "jemalloc_available": jemalloc_available(),
            "jemalloc_requested": self.requested,
            "jemalloc_enabled": self.jemalloc_enabled,
            "allocated_mb": raw["allocated"] / MIB,
            "allocated_bytes": raw["allocated"],
            "active_mb": raw["active"] / MIB,
            "resident_mb": raw["resident"] / MIB,
            "dirty_mb": raw["dirty"] / MIB,
            "peak_allocated_mb": raw["peak_allocated"] / MIB,
            "fragmentation_percent": min(100.0, max(0.0, raw["fragmentation_percent"])),
            "fragmentation_scope": "process" if raw["fragmentation_process_wide"] else "app",
            # glibc's free bytes for every caller of the process (not the app's to act on)
            "process_fragmentation_percent": raw["process_fragmentation_percent"],
            "allocation_count": raw["nmalloc"],
            "free_count": raw["nfree"],
            "arenas": {
                name: {
                    "allocated_mb": p["allocated"] / MIB,
                    "allocated_bytes": p["allocated"],
                    "resident_mb": p["resident"] / MIB,
                    "dirty_mb": p["dirty"] / MIB,
                    "allocation_count": p["nmalloc"],
                    "free_count": p["nfree"],
                }
                for name, p in raw["purposes"].items()
            },
            "process_rss_mb": None if rss is None else rss / MIB,
            "profiling_enabled": self.profiling,
            "auto_memory_tuning": self.tuning,
            "fallback_reason": self.fallback_reason,
        }
        if self.profiling:
            stats["memory_stats_interval"] = self.interval
            stats["samples"] = len(self.history)
            trend = self.trend()
            if trend is not None:
                stats["memory_trend"] = trend
        return stats

    # -- tuning ----------------------------------------------------------------------

    def tune(self, state: dict[str, float]) -> None:
        """One tuning step: let decay run; after a spike, give memory back now."""
        raw = self.allocator.stats()
        if self.backend != "malloc":
            self.allocator.decay_tick()
            spike_over = raw["allocated"] < 0.5 * state.get("allocated", 0.0)
            if spike_over and raw["dirty"] > PURGE_THRESHOLD_BYTES:
                self.allocator.purge()
                self.record("purge", f"{raw['dirty'] / MIB:.1f} MiB dirty after a spike")
        elif (
            raw["dirty"] > PURGE_THRESHOLD_BYTES
            and abs(raw["dirty"] - state.get("trimmed_at", 0.0)) > PURGE_THRESHOLD_BYTES
        ):
            # glibc: free memory inside the heap stays resident until trimmed.
            self.allocator.purge()
            self.record("malloc_trim", f"{raw['dirty'] / MIB:.1f} MiB free in the heap")
            state["trimmed_at"] = float(self.allocator.stats()["dirty"])
        state["allocated"] = float(raw["allocated"])


class _Monitor:
    """Background sampler and tuner of one AppMemory.

    A daemon thread that holds only a weak reference to its AppMemory, so it
    neither keeps the process alive nor keeps a dropped app in memory.
    """

    def __init__(self, memory: AppMemory) -> None:
        self._stop = threading.Event()
        ref = weakref.ref(memory)
        self._thread = threading.Thread(
            target=_Monitor._run,
            args=(ref, self._stop, memory.profiling, memory.tuning, memory.interval),
            name="catzilla-memory",
            daemon=True,
        )
        self._thread.start()
        weakref.finalize(memory, self._stop.set)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @staticmethod
    def _run(
        ref: weakref.ref[AppMemory],
        stop: threading.Event,
        profiling: bool,
        tuning: bool,
        interval: float,
    ) -> None:
        period = min(interval, TUNE_PERIOD_S) if tuning else interval
        next_sample = time.monotonic() + interval
        state: dict[str, float] = {}
        while not stop.wait(period):
            memory = ref()
            if memory is None:
                return
            if tuning:
                memory.tune(state)
            if profiling and time.monotonic() >= next_sample:
                memory.sample()
                next_sample += interval
            del memory
