"""Parsing JSON request bodies: Catzilla's C reader against json.loads and orjson.loads.

    .venv/bin/python -m benchmarks.json_read [--rounds 9] [--out benchmarks/results]

Three documents of the shape API bodies have (records of ints, floats,
short ASCII and non-ASCII strings, booleans, nulls, a nested object): about
100 B, 10 KiB and 100 KiB. Each parser reads each document in rounds of about
0.2 s, the rounds alternating the parsers; the median CPU time per call of
the rounds is reported (CPU time, not wall time: the machine is shared, and
waiting for a CPU is not the parser's cost), all in one run.
`catzilla._json.loads` is what `request.json()` calls (the C reader behind
one Python call); `_core.json_read` is the reader alone. orjson is measured
when installed, and so is "before": `catzilla._json.loads` as it was (orjson,
else json.loads), given the body as `request.json()` gave it, a bytes
subclass, which orjson refuses. Writes json_read.json and json_read.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catzilla import _json
from catzilla._core import json_read
from catzilla.request import BodyBytes

try:
    import orjson
except ImportError:  # optional: the table says so
    orjson = None


_LONG_NUMBER = re.compile(rb"\d{19}")


def previous_loads(data: bytes) -> Any:
    """catzilla._json.loads before the C reader (orjson installed): orjson refuses
    bytes subclasses, so a request body went to json.loads after that refusal."""
    if orjson is not None and _LONG_NUMBER.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def record(i: int) -> dict[str, Any]:
    return {
        "id": 100_000 + i,
        "name": f"Widget {i}",
        "city": "Zürich" if i % 3 == 0 else "Lyon",
        "price": round(19.99 + i * 0.37, 2),
        "ratio": i / 7,
        "active": i % 2 == 0,
        "tags": ["new", "sale"][: i % 3],
        "owner": {"id": i % 50, "email": f"user{i}@example.com", "note": None},
    }


def document(size: int) -> bytes:
    if size <= 200:
        return json.dumps(record(1), separators=(",", ":"), ensure_ascii=False).encode()
    items: list[dict[str, Any]] = []
    while len(json.dumps({"items": items}, ensure_ascii=False).encode()) < size:
        items.append(record(len(items)))
    return json.dumps({"items": items, "count": len(items)}, ensure_ascii=False).encode()


def per_call_us(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median CPU time per call of each of `fns`, in µs. The rounds
    alternate the functions (one round of each, then the next), so a minute
    in which the shared machine is slow weighs on all of them alike."""
    calls: dict[str, int] = {}
    for name, fn in fns.items():
        n = 1
        while True:  # calls per round: about 0.2 s
            t = time.process_time()
            for _ in range(n):
                fn()
            if time.process_time() - t > 0.05:
                break
            n *= 2
        calls[name] = n * 4
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            n = calls[name]
            t = time.process_time()
            for _ in range(n):
                fn()
            times[name].append((time.process_time() - t) / n * 1e6)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()

    parsers: dict[str, Callable[[bytes], Any]] = {
        "catzilla C reader (_core.json_read)": lambda d: json_read(d, json.loads),
        "catzilla._json.loads (request.json)": _json.loads,
        "json.loads": json.loads,
    }
    if orjson is not None:
        parsers[f"orjson.loads ({orjson.__version__})"] = orjson.loads
        parsers["before: _json.loads as it was, on the request body"] = previous_loads
    docs = {"100 B": document(100), "10 KiB": document(10 * 1024), "100 KiB": document(100 * 1024)}
    for doc in docs.values():  # the same values, or the comparison means nothing
        assert json_read(doc, json.loads) == json.loads(doc)

    load = os.getloadavg()
    results: dict[str, dict[str, float]] = {}
    for label, doc in docs.items():
        # The request body is a BodyBytes (a bytes subclass): what request.json() passes.
        fns = {
            name: functools.partial(fn, BodyBytes(doc) if name.startswith("before") else doc)
            for name, fn in parsers.items()
        }
        results[label] = per_call_us(fns, args.rounds)
        for name, us in results[label].items():
            print(f"{label:>8} {len(doc):>7} B  {name:<40} {us:10.2f} us", flush=True)

    write_tables(
        args.out,
        "json_read",
        "Reading JSON request bodies",
        "json.loads",
        "the parser's",
        {k: len(v) for k, v in docs.items()},
        results,
        args.rounds,
        load,
        " (shared machine: CPU time is less affected than wall time, not unaffected)",
    )


def write_tables(
    out: Path,
    stem: str,
    title: str,
    base: str,
    whose: str,
    sizes: dict[str, int],
    results: dict[str, dict[str, float]],
    rounds: int,
    load: tuple[float, float, float],
    note: str = "",
) -> None:
    """``<stem>.json`` and ``<stem>.md`` in ``out``: a row per document (its
    size in bytes), a column per contender, each time with ``base``'s time
    divided by it (higher is faster)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"python": sys.version.split()[0], "machine": platform.machine(), "rounds": rounds, "sizes": sizes}
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "us_per_call": results}, indent=2) + "\n")
    names = list(next(iter(results.values())))
    lines = [
        f"# {title}",
        "",
        f"Median CPU time per call (µs) over {rounds} rounds of about 0.2 s (the rounds alternate the "
        f"columns), one run, Python "
        f"{meta['python']}, on the 2 shared CPUs of this machine. Lower is better; in parentheses, "
        f"{base}'s time divided by {whose} (higher is faster). Load average (1 min) at start "
        f"{load[0]:.1f}, at the end {os.getloadavg()[0]:.1f}{note}.",
        "",
        "| document | bytes | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, times in results.items():
        cells = [f"{times[n]:.2f} ({times[base] / times[n]:.2f}x)" for n in names]
        lines.append(f"| {label} | {sizes[label]} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `python -m benchmarks.{stem}`", ""]
    (out / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
