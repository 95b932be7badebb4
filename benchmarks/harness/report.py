"""benchmarks/results/: results.json (every number), README.md (tables), PNG charts."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .servers import BY_NAME as SPECS
from .servers import SERVERS

OURS = "catzilla"
C64 = ("hello", "path", "query", "echo_small", "echo_10k", "large", "async", "noka", "typed")


# -- lookups -------------------------------------------------------------------------------


def entry(results: dict, server: str, workload: str) -> dict | None:
    for e in results["results"]:
        if e["server"] == server and e["workload"] == workload:
            return e
    return None


def med(results: dict, server: str, workload: str, key: str = "rps") -> float | None:
    e = entry(results, server, workload)
    if not e or e.get("status") != "ok" or not e.get(key):
        return None
    return e[key]["median"]


def role(name: str) -> str:
    return SPECS[name].role if name in SPECS else "peer"


def server_names(results: dict) -> list[str]:
    seen = {e["server"] for e in results["results"]}
    return [s.name for s in SERVERS if s.name in seen]


def peers(results: dict) -> list[str]:
    return [n for n in server_names(results) if role(n) == "peer"]


def best_peer(results: dict, workload: str, key: str = "rps", lowest: bool = False):
    vals = [(n, med(results, n, workload, key)) for n in peers(results)]
    vals = [(n, v) for n, v in vals if v is not None]
    if not vals:
        return None, None
    return (min if lowest else max)(vals, key=lambda x: x[1])


def idle_rss_mb(results: dict, server: str, key: str = "rss_kb") -> float | None:
    """Median over the server's fresh starts (one per workload) of its RSS after one request."""
    vals = [e["rss_before"][key] / 1024 for e in results["results"] if e["server"] == server and e.get("rss_before")]
    return statistics.median(vals) if vals else None


def max_rss_after_mb(results: dict, server: str) -> float | None:
    vals = [e["rss_after"]["rss_kb"] / 1024 for e in results["results"] if e["server"] == server and e.get("rss_after")]
    return max(vals) if vals else None


# -- targets -------------------------------------------------------------------------------


def targets(results: dict) -> list[dict]:
    out: list[dict] = []

    def ratio_row(title, workload, threshold, against):
        ours = med(results, OURS, workload)
        if against == "nginx":
            name, other = "nginx", med(results, "nginx", workload)
        else:
            name, other = best_peer(results, workload)
        row = {
            "target": title,
            "workload": workload,
            "threshold": threshold,
            "against": name,
            "ours": ours,
            "other": other,
            "ratio": None,
            "met": None,
        }
        if ours is not None and other:
            row["ratio"] = ours / other
            row["met"] = row["ratio"] >= threshold
        row["measured"] = (
            f"{_n(ours)} / {_n(other)} ({name}) = **{row['ratio']:.2f}x**"
            if row["ratio"] is not None
            else "not measured"
        )
        out.append(row)

    ratio_row("hello JSON >= 1.25x the fastest peer", "hello", 1.25, "peer")
    ratio_row("hello JSON >= 0.8x nginx", "hello", 0.8, "nginx")
    ratio_row("JSON POST echo (~200 B) >= 1.5x the fastest peer", "echo_small", 1.5, "peer")
    ratio_row("JSON POST echo (~10 KB) >= 1.5x the fastest peer", "echo_10k", 1.5, "peer")

    fw = results.get("framework")
    if fw:
        row = {
            "target": f"typed route (2 query params + pydantic body) >= {fw.get('target', 0.75)}x our hello",
            "met": fw.get("met"),
        }
        if fw.get("status") == "ok":
            row["measured"] = (
                f"{_n(fw['typed_median'])} / {_n(fw['hello_median'])} = **{fw['ratio_median']:.2f}x** "
                f"(median of {len(fw['pairs'])} alternating pairs on one server: "
                + ", ".join(f"{p['ratio']:.2f}" for p in fw["pairs"] if "ratio" in p)
                + "); "
                f"server CPU per request {fw['hello_cpu_us']:.2f} / {fw['typed_cpu_us']:.2f} µs "
                f"= {fw['cpu_ratio_median']:.2f}x"
            )
        else:
            row["measured"] = f"{fw.get('status')}: {fw.get('error')}"
        out.append(row)

    measured = [w for w in C64 if w in results["workloads"]]
    per = []
    for w in measured:
        ours = med(results, OURS, w, "p99_ms")
        name, low = best_peer(results, w, "p99_ms", lowest=True)
        if ours is not None and low is not None:
            per.append(
                {"workload": w, "ours": ours, "best_peer": name, "best": low, "ratio": ours / low, "met": ours < low}
            )
    row = {
        "target": "p99 latency at -c64 below every peer's",
        "per_workload": per,
        "met": all(p["met"] for p in per) if per else None,
    }
    row["measured"] = (
        "; ".join(
            f"{p['workload']}: {p['ours']:.2f} vs {p['best']:.2f} ms ({p['best_peer']}) = {p['ratio']:.2f}x"
            for p in per
        )
        or "not measured"
    )
    out.append(row)

    ours = idle_rss_mb(results, OURS)
    vals = [(n, idle_rss_mb(results, n)) for n in peers(results)]
    vals = [(n, v) for n, v in vals if v is not None]
    row = {"target": "idle RSS below every peer's", "ours": ours, "met": None}
    if ours is not None and vals:
        name, low = min(vals, key=lambda x: x[1])
        row.update(against=name, other=low, ratio=ours / low, met=ours < low)
        row["measured"] = f"{ours:.1f} MiB vs {low:.1f} MiB ({name}) = **{ours / low:.2f}x**"
    else:
        row["measured"] = "not measured"
    out.append(row)
    return out


# -- formatting ----------------------------------------------------------------------------


def _n(v, digits: int = 0) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def _mark(met) -> str:
    return "—" if met is None else ("✅ met" if met else "❌ not met")


def _label(name: str) -> str:
    spec = SPECS.get(name)
    label = spec.label if spec else name
    return f"**{label}**" if name == OURS else label


def _excerpt(text: str | None, lines: int = 4) -> str:
    if not text:
        return ""
    keep = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " ⏎ ".join(keep).replace("|", "\\|").replace("`", "'")[:400]


def _workload_table(results: dict, w: str) -> list[str]:
    rows = [
        "| server | req/s median | min–max | p50 ms | p99 ms | RSS before → after MiB | valid runs | response "
        "| status |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name in server_names(results):
        e = entry(results, name, w)
        if e is None:
            continue
        status = e.get("status", "?")
        if status != "ok":
            why = e.get("error") or ""
            ex = _excerpt(e.get("excerpt"))
            rows.append(
                f"| {_label(name)} | — | — | — | — | — | — | — | **{status}**: {why}"
                + (f" `{ex}`" if ex else "")
                + " |"
            )
            continue
        rps, p50, p99 = e.get("rps"), e.get("p50_ms"), e.get("p99_ms")
        chk = e.get("check", {})
        resp = f"{chk.get('bytes', '?')} B" + ("" if chk.get("identical") else " (same JSON, bytes differ)")
        flag = f"ok ⚠ {e['flag']}" if e.get("flag") else "ok"
        rb, ra = e.get("rss_before", {}), e.get("rss_after", {})
        procs = f" ({rb.get('processes')} procs)" if rb.get("processes", 1) > 1 else ""
        rows.append(
            f"| {_label(name)} | {_n(rps and rps['median'])} | {_n(rps and rps['min'])}–{_n(rps and rps['max'])} "
            f"| {_n(p50 and p50['median'], 2)} | {_n(p99 and p99['median'], 2)} "
            f"| {rb.get('rss_kb', 0) / 1024:.1f} → {ra.get('rss_kb', 0) / 1024:.1f}{procs} "
            f"| {e.get('valid_runs', 0)}/{e.get('valid_runs', 0) + e.get('invalid_runs', 0)} | {resp} | {flag} |"
        )
    return rows


def markdown(results: dict, charts: list[str]) -> str:
    prof = results["profile"]
    m = results["machine"]
    L: list[str] = []
    L += ["# Catzilla benchmark results", ""]
    L += [
        f"Latest run: **{results['date']}**, profile **`{prof['name']}`**: per server and workload, a fresh "
        f"server process, {prof['warmup']:g} s warm-up, then {prof['runs']} run(s) of {prof['duration']:g} s; "
        f"medians and min–max over the valid runs. Whole run: {results.get('elapsed_s', 0):.0f} s.",
        "",
    ]
    if prof["name"] != "full":
        L += [
            "> This is a **quick** run (short, one run per point, a subset of the workloads, possibly on a busy "
            "machine). `make bench` gives the numbers of record.",
            "",
        ]
    L += [
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, {m['os']}, Linux {m['kernel']}; "
        f"load average at start {' '.join(m['loadavg_at_start'])}. Server on CPU {prof['server_cpu']}, wrk on CPU "
        f"{prof['client_cpu']} (`taskset`), wrk `-t{prof['threads']}`.",
        "",
    ]
    if "headline.png" in charts:
        L += ["![hello JSON and JSON POST echo, requests/s](headline.png)", ""]

    if results["results"]:
        L += [
            "## Targets",
            "",
            "Measured in this run; peers are the Python servers (nginx is the limit, not a peer).",
            "",
            "| target | measured | result |",
            "|---|---|---|",
        ]
        for t in targets(results):
            L.append(f"| {t['target']} | {t['measured']} | {_mark(t['met'])} |")
        L += [
            "",
            "Idle RSS: the median, over the server's fresh starts (one per workload), of VmRSS summed over "
            "its process tree, 0.5 s after one request. Granian runs a supervisor and one worker process; "
            "its worker alone is in the RSS table below.",
            "",
        ]

        L += ["## Results by workload", ""]
        for w in results["workloads"]:
            info = results["workloads"][w]
            L += [f"### {info['title']} — `{info['request']}`", "", *_workload_table(results, w), ""]
        for c in ("throughput.png", "latency_p99.png", "rss.png"):
            if c in charts:
                L += [f"![{c}]({c})", ""]

        L += [
            "### RSS",
            "",
            "| server | idle RSS MiB (tree) | largest process MiB | processes | max RSS after a workload MiB |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in server_names(results):
            procs = [
                e["rss_before"]["processes"] for e in results["results"] if e["server"] == name and e.get("rss_before")
            ]
            L.append(
                f"| {_label(name)} | {_n(idle_rss_mb(results, name), 1)} "
                f"| {_n(idle_rss_mb(results, name, 'largest_kb'), 1)} | {max(procs) if procs else '—'} "
                f"| {_n(max_rss_after_mb(results, name), 1)} |"
            )
        L.append("")

    jc = results.get("json_costs")
    if jc:
        L += [
            "### What the standard json module costs",
            "",
            "Measured in this repo's interpreter on the server's CPU, alone, with the compact encoder the apps "
            "use. For a server that parses and writes JSON with the standard `json` module this is a ceiling on "
            "req/s for the JSON-heavy workloads before any HTTP work. Robyn parses and writes JSON in Rust "
            "(serde, orjson); this repo's Catzilla writes plain return values with its own C JSON writer and "
            "reads request bodies (`Request.json()`) with its own C reader, so neither cost below is its own.",
            "",
            "| operation | µs per request | req/s ceiling on one CPU |",
            "|---|---:|---:|",
        ]
        L += [f"| {k} | {v['us']:.1f} | {_n(v['ceiling_rps'])} |" for k, v in jc.items()] + [""]

    mem = results.get("memory")
    if mem and mem.get("summary"):
        L += memory_markdown(mem, charts)
    elif mem and mem.get("status") == "failed":
        L += ["## Memory study", "", f"**Not run**: {mem.get('error')}", ""]

    L += ["## Failures and flags", ""]
    problems = []
    for name, info in results.get("servers", {}).items():
        if info.get("status") != "ok":
            problems.append(
                f"- **{name}**: {info['status']}: {info.get('error')}\n\n  ```\n  "
                + "\n  ".join((info.get("excerpt") or "").strip().splitlines()[-12:])
                + "\n  ```"
            )
    for e in results["results"]:
        if (
            e.get("status") not in ("ok", "not-applicable")
            and results.get("servers", {}).get(e["server"], {}).get("status") == "ok"
        ):
            problems.append(
                f"- **{e['server']}** / {e['workload']}: {e['status']}: {e.get('error')}"
                + (f" — `{_excerpt(e.get('excerpt'), 6)}`" if e.get("excerpt") else "")
            )
        elif e.get("flag"):
            problems.append(f"- {e['server']} / {e['workload']}: {e['invalid_runs']} invalid run(s): {e['flag']}")
        elif e.get("status") == "not-applicable":
            problems.append(f"- {e['server']} / {e['workload']}: not applicable ({e.get('error')})")
    if mem:
        for phase in ("sustained", "spike"):
            runs = mem.get(phase, {})
            for name, rs in runs.items():
                for r in rs if isinstance(rs, list) else [rs]:
                    if not r.get("valid"):
                        problems.append(f"- memory study {phase} / {name}: {r.get('status')}: {r.get('error', '')}")
    L += (
        (problems and [*problems, "", *_explanations(results)])
        or [
            "None: every server installed, started, answered the expected document and ran without "
            "socket errors or non-2xx responses."
        ]
    ) + [""]

    L += versions_markdown(results)
    L += commands_markdown(results)
    L += [
        "## Method",
        "",
        "- Every server runs alone, one process (Granian: supervisor + 1 worker), pinned with `taskset -c "
        f"{prof['server_cpu']}`, from its own virtualenv (`benchmarks/.venvs/<name>`, pinned in "
        "`benchmarks/peers/<name>.txt`); this repo's Catzilla runs from the repo's `.venv` (`make setup`).",
        f"- wrk is pinned with `taskset -c {prof['client_cpu']}`, `-t1`, `--latency`, `--timeout 5s`; "
        "POST bodies come from a generated Lua script. A fresh server is started for each workload; before "
        "the load, one request checks status 200, `application/json` and the expected JSON document "
        '("bytes differ" marks the same document serialized differently, e.g. keys reordered).',
        "- A run with any socket error or non-2xx/3xx response is invalid: it is flagged and left out of the "
        "medians. RSS is VmRSS from `/proc/<pid>/status`, summed over the server's process tree.",
        "- Handlers are each framework's idiomatic ones: return a dict (or the framework's JSON response) and let "
        "the framework serialize it per request, compactly; Socketify's serializer is set to compact JSON so "
        "the bytes match. nginx answers the same bytes from its config (`return 200 '...'`, the echo module "
        "for `/echo`, a file for `/large`; `keepalive_requests 1000000`).",
        "- The async workload's handler awaits `asyncio.sleep(0)`; nginx has no equivalent and is not run there.",
        "",
    ]
    return "\n".join(L)


def memory_markdown(mem: dict, charts: list[str]) -> list[str]:
    S = mem["summary"]
    cfg = mem["config"]
    sz = mem["sizes"]
    L = [
        "## Memory study: `use_jemalloc=True` vs `False`",
        "",
        "The same Catzilla app (`benchmarks/apps/catzilla_memstudy.py`, product defaults, "
        "`listen(max_body_size=2 MiB)`): `POST /mem?size=R` with a body of B bytes; the handler reads the "
        f"body and answers R bytes. B and R: {sz['distribution']} (mean {sz['mean_kib']:.0f} KiB, median "
        f"{sz['median_kib']:.0f} KiB, p90 {sz['p90_kib']:.0f} KiB), a fixed cycle of {sz['count']} pairs. "
        f"(a) sustained: -c{cfg['connections']} for {cfg['sustained_seconds']:g} s, {cfg['runs']} run(s); "
        f"(b) spike: -c{cfg['spike_connections']} for {cfg['spike_seconds']:g} s then {cfg['idle_seconds']:g} s idle. "
        "Sampled every 0.5 s: VmRSS from /proc and `app.get_memory_stats()` from `GET /__memstats`. "
        "A raw ASGI app on uvicorn runs the same load for scale. Versions: "
        + ", ".join(f"{k} {v}" for k, v in (mem.get("versions") or {}).items())
        + ".",
        "",
        "| variant | req/s median (min–max) | MiB/s | p99 ms | peak RSS MiB | allocator peak allocated / resident MiB "
        "| fragmentation % (median under load) | spike: baseline → peak → after idle RSS MiB "
        "| after idle: allocated / resident MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in S.items():
        if name == "jemalloc_vs_malloc":
            continue
        label = mem["variants"][name]["label"]
        L.append(
            f"| {label} | {_n(s['rps_median'])} ({_n(s['rps_min'])}–{_n(s['rps_max'])}) "
            f"| {_n(s['mb_per_s_median'])} "
            f"| {_n(s['p99_ms_median'], 1)} | {_n(s['rss_peak_mb_median'], 1)} "
            f"| {_n(s['allocated_mb_peak_median'], 1)} / {_n(s['resident_mb_peak_median'], 1)} "
            f"| {_n(s['fragmentation_percent_median'], 1)} "
            f"| {_n(s['spike_rss_baseline_mb'], 1)} → {_n(s['spike_rss_peak_mb'], 1)} "
            f"→ {_n(s['spike_rss_after_idle_mb'], 1)} "
            f"| {_n(s['spike_allocated_mb_after_idle'], 1)} / {_n(s['spike_resident_mb_after_idle'], 1)} |"
        )
    L.append("")
    for c in ("memory_sustained.png", "memory_spike.png"):
        if c in charts:
            L += [f"![{c}]({c})", ""]
    L += memory_verdict(mem)
    return L


def memory_verdict(mem: dict) -> list[str]:
    S = mem["summary"]
    r = S.get("jemalloc_vs_malloc")
    if not r:
        return []
    je, ma = S["catzilla-jemalloc"], S["catzilla-malloc"]
    L = ["### What the numbers say about the claims", ""]

    def pct(x):
        return f"{(x - 1) * 100:+.1f}%"

    def noise(key_lo, key_hi):
        """Whether the run-to-run ranges of the two variants overlap (or there is one run only)."""
        if min(je["valid_runs"], ma["valid_runs"]) < 2:
            from .bench import PROFILES

            return (
                " (one run per variant: not conclusive on its own; `make bench` runs "
                f"{PROFILES['full'].mem_runs} and gives min–max)"
            )
        if je[key_lo] is not None and ma[key_lo] is not None and je[key_lo] <= ma[key_hi] and ma[key_lo] <= je[key_hi]:
            return " (the runs' min–max ranges overlap: within run-to-run noise)"
        return ""

    tr = r.get("throughput_ratio")
    if tr is not None:
        verdict = "**reproduced**" if tr >= 1.15 else "**not reproduced**"
        L.append(
            f'- *"15–30% performance improvement in memory-intensive workloads"*: jemalloc/malloc throughput '
            f"= {tr:.3f} ({pct(tr)}), {_n(je['rps_median'])} vs {_n(ma['rps_median'])} req/s — {verdict}"
            f"{noise('rps_min', 'rps_max')}."
        )
    pr = r.get("rss_peak_ratio")
    if pr is not None:
        verdict = "**reproduced**" if pr <= 0.7 else "**not reproduced**"
        L.append(
            f'- *"30% less memory"*: peak process RSS jemalloc/malloc = {pr:.3f} ({pct(pr)}) under the '
            f"sustained load, {je['rss_peak_mb_median']:.1f} vs {ma['rss_peak_mb_median']:.1f} MiB — {verdict}."
        )
    sr = r.get("spike_rss_peak_ratio")
    if sr is not None:
        L.append(f"- Spike: peak RSS jemalloc/malloc = {sr:.3f} ({pct(sr)}).")
    ir = r.get("rss_after_idle_ratio")
    if ir is not None:
        verdict = "**reproduced**" if ir <= 0.7 else "**not reproduced**"
        L.append(
            f"- After the spike and {mem['config']['idle_seconds']:g} s idle, process RSS jemalloc/malloc = "
            f"{ir:.3f} ({pct(ir)}), {je['spike_rss_after_idle_mb']:.1f} vs {ma['spike_rss_after_idle_mb']:.1f} "
            f'MiB: "30% less memory" at idle — {verdict}.'
        )
    if je.get("allocated_mb_peak_median") and je.get("rss_peak_mb_median"):
        share = je["allocated_mb_peak_median"] / je["rss_peak_mb_median"]
        L.append(
            f"- What the choice governs: `use_jemalloc` moves the C core's buffers (requests, responses), whose "
            f"live peak here is {je['allocated_mb_peak_median']:.1f} MiB, {share * 100:.0f}% of the "
            f"{je['rss_peak_mb_median']:.1f} MiB peak RSS. The handler's Python objects (the body as `bytes`, "
            "the response `bytes`) and the interpreter are CPython's, allocated by glibc malloc whatever the "
            "app's allocator is. Under load both allocators hold about the live buffers; the differences "
            "above are what is left."
        )
    fj, fm = je.get("fragmentation_percent_median"), ma.get("fragmentation_percent_median")
    if fj is not None and fm is not None:
        L.append(
            f"- Fragmentation under load (median of the samples): jemalloc {fj:.1f}% (the app's arenas) vs "
            f"malloc {fm:.1f}% (glibc's whole heap: not the same scope, see docs/memory.md)."
        )
    if je.get("spike_rss_baseline_mb") and ma.get("spike_rss_baseline_mb") and je.get("spike_rss_after_idle_mb"):
        dj = je["spike_rss_after_idle_mb"] - je["spike_rss_baseline_mb"]
        dm = ma["spike_rss_after_idle_mb"] - ma["spike_rss_baseline_mb"]
        L.append(
            f"- Kept after the spike (RSS after idle minus RSS before the spike): jemalloc {dj:+.1f} MiB, "
            f"malloc {dm:+.1f} MiB; jemalloc's arenas then report {_n(je.get('spike_resident_mb_after_idle'), 1)} "
            "MiB resident, so the rest is outside the arenas' figure (jemalloc's own metadata, or memory "
            "CPython kept)."
        )
    asg = S.get("asgi-uvicorn")
    if asg and asg.get("rss_peak_mb_median") and je.get("rss_peak_mb_median"):
        L.append(
            f"- For scale, raw ASGI on uvicorn: {_n(asg['rps_median'])} req/s, peak RSS "
            f"{asg['rss_peak_mb_median']:.1f} MiB vs Catzilla's {je['rss_peak_mb_median']:.1f} (jemalloc) and "
            f"{ma['rss_peak_mb_median']:.1f} (malloc); after the spike and idle "
            f"{_n(asg.get('spike_rss_after_idle_mb'), 1)} MiB vs {_n(je.get('spike_rss_after_idle_mb'), 1)} / "
            f"{_n(ma.get('spike_rss_after_idle_mb'), 1)}. Catzilla's C core holds each in-flight request body "
            "and response whole (the allocator's allocated peak above), which is what its peak RSS is made of "
            "at 256 connections."
        )
    ra, rr = ma.get("spike_resident_mb_after_idle"), ma.get("spike_rss_after_idle_mb")
    if ra is not None and rr is not None and ra > rr:
        L.append(
            f"- Caveat on the malloc figures: after idle, `resident_mb` for malloc reads {ra:.1f} MiB while the "
            f"whole process's RSS is {rr:.1f} MiB. For malloc that key is glibc's heap size (mallinfo2), which "
            "still counts pages that malloc_trim has handed back to the OS (madvise): it is an upper bound, "
            "not residency, and `process_fragmentation_percent` (free bytes in that heap) reads high for the "
            "same reason. "
            "Compare process RSS across allocators, not `resident_mb`."
        )
    L.append(
        "- glibc serves blocks of 128 KiB and more with mmap (until its dynamic threshold rises) and "
        "returns them on free; jemalloc keeps freed pages dirty until decay (the product's tuning: 1 s, "
        "purge after a spike). Which one holds less at a given moment depends on that timing more than on "
        "fragmentation."
    )
    L.append("")
    return L


def _explanations(results: dict) -> list[str]:
    """What the harness can tell about some failures from its own checks."""
    out = []
    for e in results["results"]:
        chk = e.get("check") or {}
        if (
            e.get("workload") == "noka"
            and e.get("status") == "invalid"
            and "read errors" in (e.get("error") or "")
            and "close" not in chk.get("connection_header", "").lower()
        ):
            out.append(
                f"- {e['server']} / noka: the server closes the connection after a request with "
                "`Connection: close` but does not say `Connection: close` in its response; wrk then "
                "expects a kept-alive connection and counts each close as a read error. The responses "
                "themselves are complete."
            )
    return out


def versions_markdown(results: dict) -> list[str]:
    L = [
        "## Versions",
        "",
        f"- Python {results['python']} (all servers: the same base interpreter)",
        f"- wrk: {results['tools']['wrk']}; nginx: {results['tools']['nginx']}",
        f"- this repo: commit `{results['repo']['commit'][:12]}`"
        + (" (+ uncommitted changes)" if results["repo"]["dirty"] else "")
        + (
            f"; this repo's Catzilla ran from `{results.get('ours_python')}`"
            + (" (CATZILLA_BENCH_PYTHON: not the repo's .venv)" if results.get("ours_python_override") else "")
        ),
    ]
    for name, info in results.get("servers", {}).items():
        vs = ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items() if v)
        L.append(f"- {name}: {vs or info.get('status')}" + (f" — {info['notes']}" if info.get("notes") else ""))
    L += ["", "Full `pip freeze` of every venv: `results.json` → `servers.<name>.freeze`.", ""]
    return L


def commands_markdown(results: dict) -> list[str]:
    L = [
        "## Exact commands",
        "",
        "```sh",
        f"{results['command']}   # from the repo root; `make bench` / `make bench-quick`",
    ]
    seen = set()
    for e in results["results"]:
        if e.get("server_command") and e["server"] not in seen:
            seen.add(e["server"])
            L.append(f"# {e['server']}\n{e['server_command']}")
    done = set()
    for e in results["results"]:
        if e.get("wrk_command") and e["workload"] not in done:
            done.add(e["workload"])
            L.append(f"# {e['workload']}\n{e['wrk_command']}")
    mem = results.get("memory") or {}
    for name, rs in (mem.get("sustained") or {}).items():
        if rs and rs[0].get("server_command"):
            L.append(f"# memory study: {name}\n{rs[0]['server_command']}")
            if rs[0].get("wrk"):
                L.append(rs[0]["wrk"]["command"])
    L += [
        "```",
        "",
        "Ports are picked free per start. The Lua scripts are generated per run "
        "(`benchmarks/harness/wrk.py`: `post_script`, `mixed_script`); their text is in `results.json` "
        "(`results[].lua_script`, `memory.lua_script`).",
        "",
    ]
    return L


# -- charts --------------------------------------------------------------------------------


def charts(results: dict, out: Path, log=print) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("[report] matplotlib not available: no charts (run from the bench venv: make bench)")
        return []
    made: list[str] = []
    names = server_names(results)
    colors = {n: ("#e4572e" if role(n) == "ours" else "#9aa5b1" if role(n) == "limit" else "#4c78a8") for n in names}

    def bars(ax, workload, key, title, fmt="{:,.0f}"):
        labels, vals, lo, hi, cols = [], [], [], [], []
        for n in names:
            e = entry(results, n, workload)
            if not e:
                continue
            labels.append(SPECS[n].label if n in SPECS else n)
            stat = e.get(key) if e.get("status") == "ok" else None
            v = stat["median"] if stat else 0
            vals.append(v)
            lo.append(v - stat["min"] if stat else 0)
            hi.append(stat["max"] - v if stat else 0)
            cols.append(colors[n])
        y = range(len(labels))
        ax.barh(y, vals, xerr=[lo, hi], color=cols, capsize=2)
        ax.set_yticks(list(y), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        top = max(vals) if vals else 1
        for i, v in enumerate(vals):
            ax.text(v + top * 0.01, i, fmt.format(v) if v else "failed / n/a", va="center", fontsize=6)
        ax.set_xlim(0, top * 1.25 or 1)

    def grid(key, xlabel, fname, fmt):
        ws = list(results["workloads"])
        cols = 3 if len(ws) > 4 else 2
        rows = (len(ws) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 2.6 * rows + 0.6), squeeze=False)
        for ax, w in zip(axes.flat, ws, strict=False):  # the grid may have spare cells
            bars(ax, w, key, f"{results['workloads'][w]['title']}\n{results['workloads'][w]['request']}", fmt)
            ax.set_xlabel(xlabel, fontsize=7)
        for ax in list(axes.flat)[len(ws) :]:
            ax.axis("off")
        fig.suptitle(
            f"Catzilla benchmarks ({results['profile']['name']} profile, {results['date']}): {xlabel}", fontsize=10
        )
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        made.append(fname)

    if results["results"]:
        grid("rps", "requests/s (median; bars: min–max)", "throughput.png", "{:,.0f}")
        grid("p99_ms", "p99 latency, ms (median)", "latency_p99.png", "{:.2f}")
        head = [w for w in ("hello", "echo_small") if w in results["workloads"]]
        if head:
            fig, axes = plt.subplots(1, len(head), figsize=(6 * len(head), 3.6), squeeze=False)
            for ax, w in zip(axes.flat, head, strict=True):
                bars(ax, w, "rps", f"{results['workloads'][w]['title']} — requests/s, 1 CPU", "{:,.0f}")
            fig.tight_layout()
            fig.savefig(out / "headline.png", dpi=110)
            plt.close(fig)
            made.append("headline.png")
        # RSS
        labels = [SPECS[n].label for n in names]
        idle = [idle_rss_mb(results, n) or 0 for n in names]
        after = [max_rss_after_mb(results, n) or 0 for n in names]
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
        y = list(range(len(names)))
        ax.barh(
            [i - 0.2 for i in y], idle, height=0.4, color=[colors[n] for n in names], label="idle (after 1 request)"
        )
        ax.barh(
            [i + 0.2 for i in y],
            after,
            height=0.4,
            color=[colors[n] for n in names],
            alpha=0.45,
            label="max after a workload",
        )
        for i, (a, b) in enumerate(zip(idle, after, strict=True)):
            ax.text(a + 0.5, i - 0.2, f"{a:.1f}", va="center", fontsize=7)
            ax.text(b + 0.5, i + 0.2, f"{b:.1f}", va="center", fontsize=7)
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("RSS, MiB (VmRSS summed over the process tree)")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title("Server memory", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "rss.png", dpi=110)
        plt.close(fig)
        made.append("rss.png")

    mem = results.get("memory")
    if mem and mem.get("sustained"):
        for phase, fname in (("sustained", "memory_sustained.png"), ("spike", "memory_spike.png")):
            runs = {n: (r[0] if isinstance(r, list) and r else r) for n, r in mem[phase].items()}
            runs = {n: r for n, r in runs.items() if r and r.get("samples")}
            if not runs:
                continue
            fig, axes = plt.subplots(2, 2, figsize=(12, 7))
            mcol = {"catzilla-jemalloc": "#e4572e", "catzilla-malloc": "#2e86ab", "asgi-uvicorn": "#888888"}
            panels = [
                ("rss_mb", "process RSS (MiB)"),
                ("resident_mb", "allocator resident (MiB)"),
                ("allocated_mb", "allocator allocated (MiB)"),
                ("fragmentation_percent", "fragmentation (%)"),
            ]
            for ax, (key, title) in zip(axes.flat, panels, strict=False):  # spare grid cells
                for n, r in runs.items():
                    pts = [(s["t"], s[key]) for s in r["samples"] if s.get(key) is not None]
                    if pts:
                        ax.plot(*zip(*pts, strict=True), label=mem["variants"][n]["label"], color=mcol.get(n), lw=1.3)
                any_run = next(iter(runs.values()))
                ax.axvspan(
                    any_run["marks"]["load_start"], any_run["marks"]["load_end"], color="#f2e394", alpha=0.35, lw=0
                )
                ax.set_title(title, fontsize=9)
                ax.set_xlabel("seconds (shaded: load)", fontsize=7)
                ax.tick_params(labelsize=7)
                ax.legend(fontsize=7)
            cfg = mem["config"]
            what = (
                f"sustained mixed-size load, -c{cfg['connections']} {cfg['sustained_seconds']:g}s"
                if phase == "sustained"
                else f"spike -c{cfg['spike_connections']} {cfg['spike_seconds']:g}s, then {cfg['idle_seconds']:g}s idle"
            )
            fig.suptitle(f"Memory study: {what} (bodies and responses 1 KiB–1 MiB, log-uniform)", fontsize=10)
            fig.tight_layout()
            fig.savefig(out / fname, dpi=110)
            plt.close(fig)
            made.append(fname)
    return made


def write_all(results: dict, out_dir: str | Path, log=print) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    made = charts(results, out, log=log)
    results["charts"] = made
    if results["results"]:
        results["targets"] = targets(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "README.md").write_text(markdown(results, made))
    return [out / "README.md", out / "results.json", *(out / c for c in made)]
