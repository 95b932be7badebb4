"""Writing JSON answers: Catzilla's C writer against orjson.dumps and json.dumps.

    .venv/bin/python -m benchmarks.json_write [--rounds 9] [--out benchmarks/results]

The C writer is what serves a handler's returned dict/list/str (csrc/python/
py_json.c), called here through `_core.json_write`, which also makes the
bytes object orjson.dumps makes. Documents: the ~100 KB answer of `make
bench` (benchmarks/apps/_payload.py, ASCII) and the 100 B / 10 KiB / 100 KiB
records of benchmarks/json_read.py (floats, non-ASCII strings, nesting).
Every writer must give the same bytes (checked first); median CPU time per
call over the rounds, all in one run. Writes json_write.json and json_write.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.apps._payload import LARGE
from benchmarks.json_read import document, per_call_us, write_tables
from catzilla._core import Allocator, json_write

try:
    import orjson
except ImportError:  # optional: the table says so
    orjson = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()

    alloc = Allocator(use_jemalloc=False)
    writers: dict[str, Callable[[Any], Any]] = {
        "catzilla C writer (_core.json_write)": lambda v: json_write(alloc, v),
        "json.dumps": lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
    }
    if orjson is not None:
        writers[f"orjson.dumps ({orjson.__version__})"] = orjson.dumps
    docs: dict[str, Any] = {"100 KB answer (make bench)": LARGE}
    for label, size in (("100 B", 100), ("10 KiB", 10 * 1024), ("100 KiB", 100 * 1024)):
        docs[f"{label} records"] = json.loads(document(size))
    for value in docs.values():  # the same bytes, or the comparison means nothing
        ref = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        assert json_write(alloc, value) == ref
        assert orjson is None or orjson.dumps(value) == ref

    load = os.getloadavg()
    results: dict[str, dict[str, float]] = {}
    for label, value in docs.items():
        results[label] = per_call_us({name: functools.partial(fn, value) for name, fn in writers.items()}, args.rounds)
        for name, us in results[label].items():
            print(f"{label:>28} {name:<40} {us:10.2f} us", flush=True)

    sizes = {label: len(json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()) for label, v in docs.items()}
    write_tables(
        args.out, "json_write", "Writing JSON answers", "json.dumps", "the writer's", sizes, results, args.rounds, load
    )


if __name__ == "__main__":
    main()
