"""The Catzilla application object."""

from __future__ import annotations

from typing import Any

from catzilla import memory
from catzilla.memory import AppMemory


class Catzilla:
    """A Catzilla application.

    The memory allocator is chosen here, once: ``use_jemalloc=True`` uses
    jemalloc when this build has it and it starts, and falls back to malloc
    with a message on stderr otherwise. It cannot be switched afterwards.
    """

    def __init__(
        self,
        *,
        use_jemalloc: bool = True,
        memory_profiling: bool = False,
        auto_memory_tuning: bool = True,
        memory_stats_interval: float = 60,
        production: bool = False,
    ) -> None:
        self.production = memory.check_bool("production", production)
        self._memory = AppMemory(
            use_jemalloc=memory.check_bool("use_jemalloc", use_jemalloc),
            memory_profiling=memory.check_bool("memory_profiling", memory_profiling),
            auto_memory_tuning=memory.check_bool("auto_memory_tuning", auto_memory_tuning),
            memory_stats_interval=memory.check_interval(memory_stats_interval),
        )

    # -- allocator ------------------------------------------------------------------

    @staticmethod
    def jemalloc_available() -> bool:
        """True when jemalloc is compiled into this build."""
        return memory.jemalloc_available()

    @staticmethod
    def get_available_allocators() -> list[str]:
        """The allocators this build can use: ``["malloc"]`` or ``["malloc", "jemalloc"]``."""
        return memory.available_allocators()

    @property
    def has_jemalloc(self) -> bool:
        """True when this app's memory actually comes from jemalloc."""
        return self._memory.jemalloc_enabled

    @property
    def use_jemalloc(self) -> bool:
        """True when jemalloc was requested (it may have fallen back to malloc)."""
        return self._memory.requested

    def get_allocator_info(self) -> dict[str, Any]:
        m = self._memory
        return {
            "current_allocator": m.backend,
            "jemalloc_available": memory.jemalloc_available(),
            "jemalloc_requested": m.requested,
            "jemalloc_enabled": m.jemalloc_enabled,
            "memory_profiling": m.profiling,
            "auto_memory_tuning": m.tuning,
            "can_switch_allocator": False,
            "status": "initialized",
            "fallback_reason": m.fallback_reason,
        }

    def get_memory_stats(self) -> dict[str, Any]:
        return self._memory.stats()

    def close(self) -> None:
        """Stop the app's background memory monitor. Idempotent."""
        self._memory.close()
