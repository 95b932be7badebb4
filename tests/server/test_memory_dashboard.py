"""The live memory page in headless Chromium (Debian's ``chromium``): it loads
from the package alone, draws its plots, and the figures it shows are those
of ``/metrics``. Skipped, saying why, where no Chromium is installed."""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from catzilla import Catzilla
from tests.server.conftest import serve_in_thread

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client (scripts/requirements-dev.txt)")

PATH = "/__catzilla__/memory"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)"
)


def chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=6000",
        "--window-size=1280,1000",
        *args,
        url,
    ]
    # The browser is not ours to sanitize: the ASan runtime preloaded for the
    # server's tests (make test-asan) must not reach it.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env)


class Figures(html.parser.HTMLParser):
    """The page's figures: elements with data-metric / data-value, the body's data-*, the scrape it used."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, str]] = []
        self.body: dict[str, str] = {}
        self.scrape = ""
        self._in_scrape = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        if "data-metric" in a:
            self.figures.append(a)
        self._in_scrape = tag == "pre" and a.get("id") == "scrape"

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_scrape = False

    def handle_data(self, data: str) -> None:
        if self._in_scrape:
            self.scrape += data


def scraped(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith(("catzilla_memory_", "catzilla_process_resident")):
                out[(s.name, s.labels.get("purpose", ""))] = s.value
    return out


def dashboard_app(**options) -> Catzilla:
    app = Catzilla(memory_profiling=True, memory_stats_interval=0.2, **options)

    @app.get("/hello")
    def hello():
        return {"hello": "world"}

    return app


def test_page_is_opt_in_and_self_contained() -> None:
    assert Catzilla().memory_dashboard is None
    assert Catzilla(production=True).memory_dashboard is None
    app = dashboard_app(memory_dashboard=PATH, production=True)  # asked for: served, even in production
    with serve_in_thread(app) as srv, httpx.Client(base_url=srv.base_url) as c:
        page = c.get(PATH)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "http://" not in page.text and "https://" not in page.text  # no CDN, nothing external
        assert "<script src" not in page.text
        data = c.get(PATH + "/data").json()
        assert data["allocator"] == app._memory.backend
        assert set(data["current"]["purposes"]) == {"request", "response", "cache", "static", "task", "general"}
        assert data["metrics_url"] is None
        assert any(a["action"] == "set_decay" for a in data["actions"]) == app._memory.tuning
    off = dashboard_app()
    with serve_in_thread(off) as srv, httpx.Client(base_url=srv.base_url) as c:
        assert c.get(PATH).status_code == 404


@needs_chromium
def test_page_plots_and_matches_metrics(tmp_path: Path) -> None:
    app = dashboard_app(memory_dashboard=PATH, metrics=True)
    with serve_in_thread(app) as srv:
        url = f"{srv.base_url}{PATH}"
        with httpx.Client(base_url=srv.base_url) as c:
            for _ in range(20):
                c.get("/hello")
        shot = Path(os.environ.get("CATZILLA_SCREENSHOT_DIR", tmp_path)) / "memory_dashboard.png"
        r = chromium(url, f"--screenshot={shot}")
        assert r.returncode == 0, r.stderr[-2000:]
        assert shot.stat().st_size > 10_000  # a real picture, not a blank page
        r = chromium(url, "--dump-dom")
        assert r.returncode == 0, r.stderr[-2000:]
        page = Figures()
        page.feed(r.stdout)
        with httpx.Client(base_url=srv.base_url) as c:
            fresh = scraped(c.get("/metrics").text)

    assert page.body.get("data-ready") == "1", "the plots were not drawn"
    assert int(page.body.get("data-points", "0")) >= 2
    shown = {
        (f["data-metric"], f.get("data-purpose", "")): float(f["data-value"]) for f in page.figures if f["data-value"]
    }
    purposes = {"request", "response", "cache", "static", "task", "general"}
    for fig in ("allocated", "active", "resident", "dirty"):
        assert {p for (m, p) in shown if m == f"catzilla_memory_{fig}_bytes"} == purposes
    assert ("catzilla_process_resident_memory_bytes", "") in shown
    assert ("catzilla_memory_fragmentation_ratio", "") in shown
    # exactly the figures of the /metrics scrape the page made
    page_scrape = scraped(page.scrape)
    for key, value in shown.items():
        assert page_scrape[key] == value, key
    # and those of a scrape made now, but for what moved meanwhile (this scrape's own buffers, RSS)
    for key, value in shown.items():
        tolerance = max(0.10 * fresh[key], 256 * 1024) if key[0].endswith("_bytes") else 0.05
        assert abs(fresh[key] - value) <= tolerance, (key, value, fresh[key])
