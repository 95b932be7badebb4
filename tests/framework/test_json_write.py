"""The C JSON writer (what serves a returned dict, list or str) writes exactly
json.dumps's compact, UTF-8 bytes; it leaves to Python what it does not write."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import pytest

from catzilla._core import Allocator, json_write

ALLOC = Allocator(use_jemalloc=False)


def reference(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# Bytes the writer escapes, bytes just around them, and multi-byte UTF-8.
SPECIALS = ['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", " ", "\x7f", "/", "é", "€", "😀", "!", "#", "]"]


@pytest.mark.parametrize("length", range(0, 42))
def test_strings_of_every_length_with_escapes_anywhere(length: int) -> None:
    # The writer tests strings a word (8 bytes) at a time: a special byte at
    # every offset of a word, and in the short and overlapping tails.
    rng = random.Random(length)
    cases = ["x" * length]
    for pos in range(length):
        for special in SPECIALS:
            cases.append("x" * pos + special + "y" * (length - pos - 1))
    for _ in range(200):
        cases.append("".join(rng.choice(SPECIALS) if rng.random() < 0.2 else "z" for _ in range(length)))
    for s in cases:
        assert json_write(ALLOC, s) == reference(s), repr(s)
        assert json_write(ALLOC, {s: [s]}) == reference({s: [s]}), repr(s)


def neighbours(x: float, reach: int = 2) -> list[float]:
    """x and the doubles up to `reach` steps below and above it."""
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    return [struct.unpack("<d", struct.pack("<q", bits + i))[0] for i in range(-reach, reach + 1)]


def test_floats_are_written_as_repr_writes_them() -> None:
    # The writer finds the shortest round-tripping decimal itself between
    # 1e-4 and 1e15 (exact integer arithmetic) and asks repr elsewhere: its
    # edges, powers of two (where the gap below halves) and of ten, the
    # decimals handlers carry, and random doubles of every bit pattern.
    rng = random.Random(2026)
    lo, hi = (struct.unpack("<q", struct.pack("<d", x))[0] for x in (1e-4, 1e15))
    values = [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1 + 0.2, 1 / 3, 2 / 3, 9007199254740993.0]
    for e in range(-16, 60):
        values += neighbours(2.0**e) + neighbours(10.0 ** (e // 4)) + neighbours(5.0 * 10.0 ** (e // 4))
    values += neighbours(1e-4, 50) + neighbours(1e15, 50)
    values += [round(rng.uniform(0, 10_000), rng.randrange(8)) for _ in range(20_000)]
    values += [rng.randrange(1, 10**7) / rng.randrange(1, 10**4) for _ in range(20_000)]
    bits = [rng.randrange(lo, hi) for _ in range(50_000)] + [rng.getrandbits(63) for _ in range(10_000)]
    values += [v for v in struct.unpack(f"<{len(bits)}d", struct.pack(f"<{len(bits)}q", *bits)) if math.isfinite(v)]
    values += [-v for v in values]
    assert json_write(ALLOC, values) == reference(values)
    for v in values[:2000]:  # alone too: the first mismatch named
        assert json_write(ALLOC, v) == reference(v), repr(v)


def test_ints_at_every_size() -> None:
    # One machine digit (30 bits) is read without a call; then 64 bits; then str().
    edges = [0, 1, 9, 10, 99, 2**30 - 1, 2**30, 2**31, 2**62, 2**63 - 1, 2**63, 2**64, 10**19, 10**40]
    values = edges + [-v for v in edges] + [True, False]
    assert json_write(ALLOC, values) == reference(values)


def test_values_of_every_kind() -> None:
    doc = {
        "ints": [0, -1, 7, 2**63 - 1, -(2**63), 2**64, -(10**30)],
        "floats": [0.0, -0.0, 0.5, 1.1, 19.99, 1 / 3, 1e-5, 1e16, 123456789.125, -2.5e-7],
        "bools": [True, False, None],
        "nested": {"a": {"b": [[], {}, [1, [2, [3]]]]}},
        "tuple": (1, "two"),
        "unicode": "Zürich \u2013 東京 😀",
    }
    assert json_write(ALLOC, doc) == reference(doc)


@pytest.mark.parametrize(
    "value",
    [{1: "int key"}, {"set": {1, 2}}, [b"bytes"], {"x": object()}],
    ids=["int-key", "set", "bytes", "object"],
)
def test_values_it_does_not_write_are_left_to_python(value: Any) -> None:
    assert json_write(ALLOC, value) is None


def test_nan_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        json_write(ALLOC, {"x": float("nan")})


class _Point:
    def __init__(self) -> None:
        self.x = 1
        self.y = "two"


def test_dicts_of_every_layout_in_insertion_order() -> None:
    # The writer walks a combined table's entries itself: deleted entries,
    # tables that once held a non-str key, and split tables (an instance's
    # __dict__) must come out as json.dumps writes them.
    holes = {f"k{i}": i for i in range(50)}
    for i in range(0, 50, 3):
        del holes[f"k{i}"]
    holes["late"] = "after the holes"
    general: dict[Any, Any] = {1: "int key", "a": 1}
    del general[1]
    general["b"] = [2]
    split = _Point().__dict__
    emptied = {"gone": 1}
    del emptied["gone"]
    big = {str(i): {"v": i} for i in range(2000)}
    for value in (holes, general, split, emptied, big, [holes, general, split, emptied]):
        assert json_write(ALLOC, value) == reference(value)


def test_a_non_str_key_after_deletions_is_left_to_python() -> None:
    d: dict[Any, Any] = {"a": 1, "b": 2}
    del d["a"]
    d[3] = "int key"
    assert json_write(ALLOC, d) is None
