"""The live memory page (``Catzilla(memory_dashboard="/__catzilla__/memory")``).

A page served from the package (``dashboard.html``, no CDN, no external
script) that plots, live, allocated / resident / fragmentation per purpose
and the process RSS: the profiling history (``memory_profiling=True``) and
a fresh sample on every poll. It shows the allocator in use and the tuning
actions taken. With ``metrics=True`` its table of current figures comes
from ``/metrics`` itself, so the page and the scrape say the same thing.
Off by default; it is never turned on by ``production=True``: only by
asking for it.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catzilla import memory

if TYPE_CHECKING:
    from catzilla.app import Catzilla

PAGE = Path(__file__).with_name("dashboard.html")


def snapshot(app: Catzilla) -> dict[str, Any]:
    mem = app._memory
    history = [asdict(s) for s in mem.history]
    current = asdict(mem.sample_now())
    return {
        "allocator": mem.backend,
        "jemalloc_available": memory.jemalloc_available(),
        "fallback_reason": mem.fallback_reason,
        "profiling": mem.profiling,
        "tuning": mem.tuning,
        "interval": mem.interval,
        "history": history,
        "current": current,
        "actions": [asdict(a) for a in mem.actions],
        "action_counts": mem.action_counts(),
        "metrics_url": (app.root_path + app.metrics_path) if app.metrics else None,
    }


def install(app: Catzilla, path: str) -> None:
    from catzilla.response import HTMLResponse, Response

    root = app.root_path
    page = (
        PAGE.read_text("utf-8")
        .replace("{{title}}", html.escape(app.title))
        .replace("{{data_url}}", json.dumps(root + path + "/data"))
    )

    def memory_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    def memory_data() -> Response:
        body = json.dumps(snapshot(app), separators=(",", ":"))
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    options = {"include_in_schema": False}
    app._add(path, memory_page, ["GET"], "memory_dashboard", [], options, internal=True)
    app._add(path + "/data", memory_data, ["GET"], "memory_dashboard_data", [], options, internal=True)
