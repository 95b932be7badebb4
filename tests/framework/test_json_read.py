"""The C JSON reader (csrc/python/py_json_read.h) against ``json.loads``.

Every document of the corpus is read twice: by ``_core.json_read`` with a
fallback that refuses (so what the C reader accepts, and the value it builds,
is seen on its own), and by ``catzilla._json.loads`` (the reader with
``json.loads`` deciding errors). Both must agree with ``json.loads``: the
reader accepts exactly what ``json.loads`` accepts and builds the same
values, type for type (floats by ``repr``, dicts in key order); ``loads``
raises the same exception class with the same message and position. The one
planned difference, nesting deeper than 512 levels, is tested on its own.
"""

from __future__ import annotations

import decimal
import gc
import json
import math
import random
import struct
import sys
import tracemalloc
from typing import Any

import pytest

from catzilla import _json
from catzilla._core import json_read
from catzilla.request import BodyBytes

MAX_DEPTH = 512


class Declined(Exception):
    """Raised by the fallback: the C reader did not produce the value itself."""


def refuse(data: object) -> Any:
    raise Declined


def same(a: Any, b: Any, path: str = "$") -> None:
    """a and b are the same value, type for type, dict order included."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__} ({a!r} / {b!r})"
    if isinstance(a, float):
        assert repr(a) == repr(b), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)!r} != {list(b)!r}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def outcome(fn: Any, doc: bytes | bytearray) -> tuple[str, Any]:
    try:
        return "value", fn(doc)
    except Exception as exc:
        return "error", exc


def check(doc: bytes | bytearray) -> None:
    """The reader and loads agree with json.loads on doc."""
    want_kind, want = outcome(json.loads, doc)
    got_kind, got = outcome(lambda d: json_read(d, refuse), doc)
    if json.detect_encoding(doc) not in ("utf-8", "utf-8-sig"):  # UTF-16 and UTF-32: json.loads reads them
        assert got_kind == "error" and isinstance(got, Declined), f"{bytes(doc)[:80]!r}: {got!r}"
    elif want_kind == "value":
        assert got_kind == "value", f"{bytes(doc)[:80]!r}: json.loads reads it, the reader refused"
        same(got, want)
    else:
        assert got_kind == "error" and isinstance(got, Declined), (
            f"{bytes(doc)[:80]!r}: json.loads raises {want!r}, the reader gave {got!r}"
        )
    kind, value = outcome(_json.loads, doc)
    assert kind == want_kind, f"{bytes(doc)[:80]!r}: {value!r} / {want!r}"
    if kind == "value":
        same(value, want)
    else:
        assert type(value) is type(want) and str(value) == str(want)
        if isinstance(want, json.JSONDecodeError):
            assert (value.pos, value.lineno, value.colno) == (want.pos, want.lineno, want.colno)


VALID = [
    b"0",
    b"-0",
    b"1",
    b"-1",
    b"123",
    b"true",
    b"false",
    b"null",
    b'""',
    b"[]",
    b"{}",
    b"[[]]",
    b'{"":{}}',
    b" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n2 \t\r\n] \t\r\n",
    b'{ "a" : 1 , "b" : [ ] }',
    # duplicate keys: the last value, in the first one's place
    b'{"a":1,"b":2,"a":3}',
    b'{"a":{"x":1},"a":[2]}',
    b'{"k":1,"k":1,"k":null}',
    # escapes
    b'"\\"\\\\\\/\\b\\f\\n\\r\\t"',
    b'"\\u0000\\u001f\\u007f\\u0080\\u00ff\\u0100\\uffff"',
    b'"\\u00E9\\u00e9"',
    b'"a\\nb"',
    b'"\\/"',
    b'"x\\u0041y"',
    # surrogates: escaped pairs combine; lone ones stay; raw (UTF-8 encoded) ones never pair
    b'"\\ud83d\\ude00"',
    b'"\\uD83D\\uDE00"',
    b'"\\ud800"',
    b'"\\udc00"',
    b'"\\ud800\\ud800"',
    b'"\\ud800\\u0041"',
    b'"\\udc00\\ud800"',
    b'"\\ud800x"',
    b'"\\ud800\\n"',
    b'"\\ud83d\\ude00\\ud83d"',
    b'"\xed\xa0\x80"',
    b'"\xed\xa0\x80\xed\xb0\x80"',
    b'"\\ud800\xed\xb0\x80"',
    b'"\xed\xa0\x80\\udc00"',
    b'{"\\ud800":1}',
    # UTF-8 of every length, DEL, and the limits
    '"h\u00e9 \u20ac \U0001f600 \x7f \u07ff \u0800 \uffff \U00010000 \U0010ffff"'.encode(),
    '{"cl\u00e9":"v\u00e4lue","\u65e5\u672c":["\U0001f600"]}'.encode(),
    # a UTF-8 byte order mark is skipped (utf-8-sig); UTF-16 and UTF-32 are json.loads's
    b'\xef\xbb\xbf{"a":1}',
    b"\xef\xbb\xbf1",
    '{"a":"\u00e9"}'.encode("utf-16"),
    '["x"]'.encode("utf-16-le"),
    '["x"]'.encode("utf-16-be"),
    '{"a":1}'.encode("utf-32"),
    "[1]".encode("utf-32-le"),
    "12".encode("utf-16-le"),
    b"1\x00",
    b"1\x00\x00\x00",
    # numbers: ints of any size, floats at rounding edges, NaN and infinities
    b"9223372036854775807",
    b"-9223372036854775808",
    b"9223372036854775808",
    b"18446744073709551616",
    b"123456789012345678",
    b"1234567890123456789",
    b"-999999999999999999",
    b"-1000000000000000000",
    b"9007199254740993",
    b"9007199254740993.0",
    b"9007199254740992.5",
    b"0.1",
    b"0.2",
    b"0.30000000000000004",
    b"1e22",
    b"1e23",
    b"1e-22",
    b"1e-23",
    b"8.98846567431158e307",
    b"1.7976931348623157e308",
    b"1.7976931348623158e308",
    b"1.7976931348623159e308",
    b"5e-324",
    b"2.4703282292062327e-324",
    b"2.4703282292062328e-324",
    b"2.2250738585072011e-308",
    b"2.2250738585072012e-308",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"-1e-400",
    b"0e0",
    b"-0.0",
    b"-0e-0",
    b"0.0e+999999",
    b"1E5",
    b"1e+5",
    b"1e-5",
    b"1.5E-5",
    b"123456789012345.6",
    b"1234567890123456.7",
    b"0.000001234567890123456789",
    b"100000000000000000000000.0",
    b"3.141592653589793238462643383279502884197",
    b"1" + b"0" * 400 + b".5",
    b"0." + b"0" * 400 + b"1",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"[NaN,Infinity,-Infinity]",
    b'{"n":-Infinity}',
    b"1" * 4300,
    b"-" + b"7" * 4300,
    b"1" * 1000 + b"e-1000",
    # nesting up to the limit
    b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH,
    b"[{}," * 100 + b"0" + b"]" * 100,
]

INVALID = [
    b"",
    b" ",
    b"\n",
    b"[",
    b"]",
    b"{",
    b"}",
    b"[1,]",
    b'{"a":1,}',
    b"[,1]",
    b"[1,,2]",
    b"{,}",
    b"[1 2]",
    b'{"a" 1}',
    b'{"a":1 "b":2}',
    b"{1:2}",
    b"{a:1}",
    b"{'a':1}",
    b"'a'",
    b"[1]]",
    b"[]]",
    b"{}}",
    b"1 2",
    b"[1] x",
    b"// c\n1",
    b"/* c */ 1",
    b"1 // c",
    b"[1, /* c */ 2]",
    b"#1",
    # numbers json's pattern does not take
    b"01",
    b"-01",
    b"00",
    b"+1",
    b".5",
    b"1.",
    b"1.e5",
    b"1e",
    b"1e+",
    b"1E-",
    b"-",
    b"--1",
    b"- 1",
    b"0x10",
    b"1_000",
    b"1.5.5",
    b"[01]",
    b"[1.]",
    b'{"a":1e}',
    b"-.5",
    # literals
    b"tru",
    b"truex",
    b"nul",
    b"nulll",
    b"True",
    b"NULL",
    b"nan",
    b"inf",
    b"infinity",
    b"-NaN",
    b"+Infinity",
    b"-infinity",
    b"Infinit",
    b"-Infinit",
    b"NaNa",
    # strings
    b'"',
    b'"abc',
    b'"\\"',
    b'"\\x"',
    b'"\\u12"',
    b'"\\u12g4"',
    b'"\\U0041"',
    b'"\\ud800\\u12"',
    b'"\\ud800\\uzzzz"',
    b'"\\',
    b'"\\u',
    b'"\\ud800\\',
    b'"a\nb"',
    b'"\t"',
    b'"\x00"',
    b'"\x1f"',
    b'"\r"',
    # invalid UTF-8, in and out of strings
    b'"\xff"',
    b"\xff",
    b'"\xc0\x80"',
    b'"\xc1\xbf"',
    b'"\xe0\x80\x80"',
    b'"\xed\xa0"',
    b'"\xf4\x90\x80\x80"',
    b'"\xf5\x80\x80\x80"',
    b'"\xf0\x80\x80\x80"',
    b'"\x80"',
    b'"\xc3"',
    b'"\xe2\x82"',
    b'"\xf0\x9f\x98"',
    b'["a"] \xff',
    b"[1,]\xff",
    b'"\xc3\xa9\xff"',
    b'{"\xff":1}',
    b"\xef\xbb\xbf\xef\xbb\xbf1",
    b"\xef\xbb",
    b"\xa0",
    "\u00a01".encode(),
    "\u20281".encode(),
    # NULs: json's encoding detection
    b"\x00",
    b"[1]\x00",
    b"\x00\x00\x00\x01",
    # the digit limit (ValueError, not JSONDecodeError)
    b"1" * 4301,
    b"[" + b"9" * 5000 + b"]",
    b'{"a":' + b"2" * 4301 + b"}",
    b"[" + b"1" * 4301 + b",]",
]


@pytest.mark.parametrize("doc", VALID, ids=range(len(VALID)))
def test_valid(doc: bytes) -> None:
    json.loads(doc)  # the corpus itself: valid
    check(doc)
    check(bytearray(doc))


@pytest.mark.parametrize("doc", INVALID, ids=range(len(INVALID)))
def test_invalid(doc: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(doc)
    check(doc)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(10 if depth < 6 else 6)
    if pick == 0:
        return rng.choice([None, True, False])
    if pick == 1:
        return rng.randrange(-(10 ** rng.randrange(1, 40)), 10 ** rng.randrange(1, 40))
    if pick == 2:
        return rng.choice(
            [
                rng.random(),
                rng.uniform(-1e6, 1e6),
                rng.gauss(0, 1e-8),
                math.ldexp(rng.random(), rng.randrange(-1074, 1024)),
            ]
        )
    if pick == 3:
        bits = rng.getrandbits(64)
        f = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
        return f
    if pick in (4, 5):
        alphabet = 'ab"\\/\b\f\n\r\t\x00\x1f\x7f\u00e9\u07ff\u0800\u20ac\ud800\udc00\uffff\U0001f600\U0010ffff '
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
    if pick in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {
        random_value(rng, 6) if rng.random() < 0.9 else "k": random_value(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


def encode(rng: random.Random, value: Any) -> bytes:
    ascii_only = rng.random() < 0.5
    text = json.dumps(value, ensure_ascii=ascii_only, indent=rng.choice([None, 0, 2, "\t"]),
                      separators=rng.choice([None, (",", ":"), (" , ", " : ")]))  # fmt: skip
    return text.encode("utf-8", "surrogatepass")


def test_random_documents() -> None:
    rng = random.Random(18)
    for _ in range(3000):
        doc = encode(rng, random_value(rng))
        check(doc)


def test_mutated_documents() -> None:
    """Random byte edits of valid documents: the reader refuses exactly what json.loads refuses."""
    rng = random.Random(4)
    seeds = [d for d in VALID if len(d) < 200] + [encode(rng, random_value(rng)) for _ in range(100)]
    alphabet = b'{}[]:,"\\ 0123456789.eE+-tfnulNaIy\t\n\r\x00\x1f\x7f\x80\xbf\xc3\xed\xa0\xf0\xf4\xff/u'
    for _ in range(20000):
        doc = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            at = rng.randrange(len(doc) + 1)
            if op == 0 or not doc:
                doc[at:at] = bytes([rng.choice(alphabet)])
            elif op == 1:
                del doc[min(at, len(doc) - 1)]
            else:
                doc[min(at, len(doc) - 1)] = rng.choice(alphabet)
        check(bytes(doc))


def test_floats_round_as_cpython() -> None:
    """Decimal strings of random doubles, shortened and perturbed: the fast path and CPython's agree."""
    rng = random.Random(7)
    for _ in range(20000):
        f = math.ldexp(rng.random(), rng.randrange(-1074, 1024)) * rng.choice([1, -1])
        for text in (repr(f), f"{f:.15g}", f"{f:.16e}", f"{f:.17g}", f"{f:.{rng.randrange(1, 25)}g}"):
            if "inf" in text or "nan" in text:
                continue
            doc = text.encode()
            got, want = json_read(doc, refuse), json.loads(doc)  # "1e+16" is a float, "12345" an int
            assert type(got) is type(want) and repr(got) == repr(want), text
    # Near the midpoints between neighbouring doubles, with 16 to 19 digits (the
    # reader's own conversions take up to 19 and exponents up to 27).
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        for _ in range(20000):
            f = math.ldexp(1 + rng.random(), rng.randrange(-90, 150))
            mid = (decimal.Decimal(f) + decimal.Decimal(math.nextafter(f, math.inf))) / 2
            for digits in (15, 16, 17, 18):
                doc = f"{mid:.{digits}e}".encode()
                assert repr(json_read(doc, refuse)) == repr(float(doc)), doc
    for mantissa in range(1, 200):
        for exp in range(-30, 30):
            doc = f"{mantissa}e{exp}".encode()
            assert repr(json_read(doc, refuse)) == repr(float(doc)), doc


def test_nesting_beyond_the_limit() -> None:
    """Deeper than 512 levels: JSONDecodeError (a ValueError: a 400/422 answer) naming the limit, at the
    bracket that goes too deep; never a crash, however deep."""
    for doc, pos in [
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), MAX_DEPTH),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), 5 * MAX_DEPTH),
        (b"\xef\xbb\xbf" + b" [" * 100_000, 2 * MAX_DEPTH + 1),
        (b'["\xc3\xa9",' * 600, 5 * MAX_DEPTH),  # positions count characters, not bytes
    ]:
        with pytest.raises(json.JSONDecodeError) as info:
            _json.loads(doc)
        assert info.value.msg == "Arrays and objects nested deeper than 512 levels"
        assert info.value.pos == pos
        assert "512" in str(info.value)
        with pytest.raises(json.JSONDecodeError):
            json_read(doc, refuse)  # the reader's own error, not the fallback's


def test_int_digit_limit_follows_the_interpreter() -> None:
    doc = b"1" * 5000
    with pytest.raises(ValueError, match="4300"):
        _json.loads(doc)
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(6000)
    try:
        assert json_read(doc, refuse) == int(doc)
        sys.set_int_max_str_digits(640)
        with pytest.raises(ValueError, match="640"):
            _json.loads(b"[" + b"2" * 641 + b"]")
    finally:
        sys.set_int_max_str_digits(old)


def test_other_inputs_go_to_the_fallback() -> None:
    """str, memoryview and the like are json.loads's: the reader hands them over untouched."""
    seen: list[object] = []

    def record(data: object) -> str:
        seen.append(data)
        return "fallback"

    view = memoryview(b"[1]")
    assert json_read("[1]", record) == "fallback"
    assert json_read(view, record) == "fallback"
    assert json_read(b"[1]", record) == [1]
    assert json_read(BodyBytes(b"[2]"), record) == [2]  # bytes subclasses: the request body is one
    assert json_read(bytearray(b"[3]"), record) == [3]
    assert seen == ["[1]", view]
    assert _json.loads('{"a":"\ud800"}') == {"a": "\ud800"}
    with pytest.raises(TypeError, match="memoryview"):
        _json.loads(view)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="2 arguments"):
        json_read(b"1")  # type: ignore[call-arg]


def test_strings_are_canonical() -> None:
    """The str built for each kind of text compares, hashes and indexes as Python's own."""
    for text in ["", "a", "\x7f", "\x80", "\u00ff", "\u0100", "\uffff", "\U00010000", "a\u00e9", "\u00e9\U0001f600"]:
        for doc in (json.dumps(text, ensure_ascii=True).encode(), json.dumps(text, ensure_ascii=False).encode()):
            got = json_read(doc, refuse)
            assert got == text and hash(got) == hash(text) and {text: 1}[got] == 1
            # The same size as a str just decoded (no UTF-8 copy cached in either): the same kind.
            fresh = text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
            assert sys.getsizeof(got) == sys.getsizeof(fresh), (doc, got)
            if len(text) == 1 and ord(text) < 256:
                assert got is fresh  # the interpreter's one str for that character


def test_the_collector_state_is_restored() -> None:
    docs = [b'{"a":[1,2]}', b"[1,]", b"[" * 600, "[1]", b"\xff\xfe[\x00]\x00"]
    assert gc.isenabled()
    for doc in docs:
        outcome(_json.loads, doc)  # type: ignore[arg-type]
        assert gc.isenabled(), doc
    gc.disable()
    try:
        for doc in docs:
            outcome(_json.loads, doc)  # type: ignore[arg-type]
            assert not gc.isenabled(), doc
    finally:
        gc.enable()


def test_error_paths_release_what_they_built() -> None:
    """Documents that fail late, after many values (past the reader's first 256 slots): nothing stays."""
    body = b'{"k%d":[1.5,"s\\u00e9",{"x":null}],' * 400
    docs = [
        body.replace(b"%d", b"") + b"}",  # trailing comma: json.loads's error
        b"[" + b'"x",' * 1000 + b"[" * 600,  # nesting beyond the limit: the reader's error
        b"[" + b"1," * 1000 + b"9" * 5000 + b"]",  # the digit limit
        b"[" + b'"v",' * 1000 + b'"\xff"]',  # not UTF-8
    ]
    for doc in docs:
        outcome(_json.loads, doc)  # warm up: the key cache, json's own caches
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            for doc in docs:
                kind, _ = outcome(_json.loads, doc)
                assert kind == "error"
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes still allocated after 200 failed reads"
