"""The C JSON writer (what serves a returned dict, list or str) writes exactly
json.dumps's compact, UTF-8 bytes; it leaves to Python what it does not write."""

from __future__ import annotations

import json
import random
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
