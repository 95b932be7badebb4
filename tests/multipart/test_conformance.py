"""csrc/multipart against the multipart-form-data-conformance suite and
python-multipart (Starlette's parser).

The C parser is not reachable from Python yet, so tests/c/multipart_dump.c
(compiled here with the system C compiler, with csrc/multipart and
csrc/memory) parses each body and prints the parts as JSON lines. Every
case runs whole, 1 byte per feed and 7 bytes per feed; all three must agree.

Where the C parser and the suite's expectation or python-multipart
disagree, the case must be listed in the tables below with the reason
(docs/multipart.md has the same tables): a new disagreement, or a listed one
that went away, fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

multipart_conformance = pytest.importorskip("multipart_form_data_conformance")
python_multipart = pytest.importorskip("python_multipart")
from python_multipart.multipart import MultipartParser, parse_options_header  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "tests/c/multipart_dump.c",
    ROOT / "csrc/multipart/cz_multipart.c",
    *sorted((ROOT / "csrc/memory").glob("*.c")),  # the memory layer: its malloc backend (no CZ_HAVE_* given)
]

# Conformance cases where our accept/refuse differs from the suite's
# expectation (all are tagged optional/lenient by the suite).
SUITE_DIFF = {
    "061-lf-only-lenient": (
        "bare LF line endings refused (strict CRLF, like python-multipart); the suite marks it lenient"
    ),
    "062-mixed-endings": "a bare LF ending a part header line refused; the suite marks it lenient",
    "085-header-folding": "obs-fold in a part header refused (RFC 9112 deprecates it; python-multipart refuses too)",
    "208-duplicate-headers": "two Content-Disposition fields refused as ambiguous; the suite allows refusing",
    "210-control-chars-in-name": "a NUL (any control but HTAB) in a part header refused; the suite accepts it",
}

# Conformance cases where python-multipart (driven as Starlette drives it)
# and the C parser disagree on accept/refuse.
PM_DIFF_SUITE = {
    "200-missing-final-terminator": (
        "python-multipart never checks that the close delimiter came (finalize() is a no-op): accepts a truncated body"
    ),
    "202-truncated-body": "same: a body cut inside a part's data is accepted, the part is never ended",
    "107-preamble-content": (
        "python-multipart refuses a preamble (the body must start with --boundary); RFC 2046 says to ignore "
        "it, as we do (bounded by max_header_bytes)"
    ),
    "208-duplicate-headers": "python-multipart keeps the last Content-Disposition",
    "210-control-chars-in-name": "python-multipart accepts a NUL inside a quoted name",
}


# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("mpdump") / "multipart_dump"
    subprocess.run(
        [
            cc,
            "-std=c11",
            "-O1",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{ROOT / 'csrc/memory'}",
            f"-I{ROOT / 'csrc/multipart'}",
            *map(str, SOURCES),
            "-o",
            str(out),
        ],
        check=True,
    )
    return out


def run_c(dump: Path, content_type: str, body: bytes, step: int = 0) -> dict:
    """{'ok': bool, 'parts': [...], 'error': (status, reason)} from the C parser."""
    proc = subprocess.run([str(dump), content_type, str(step)], input=body, capture_output=True, check=True)
    parts, result = [], {}
    for line in proc.stdout.decode().splitlines():
        obj = json.loads(line)
        if "part" in obj:
            p = obj["part"]
            h = lambda v: None if v is None else bytes.fromhex(v)  # noqa: E731
            parts.append(
                {
                    "name": h(p["name"]),
                    "filename": h(p["filename"]),
                    "filename_plain": h(p["filename_plain"]),
                    "filename_star": p["filename_star"],
                    "content_type": h(p["content_type"]),
                    "headers": [(bytes.fromhex(n), bytes.fromhex(v)) for n, v in p["headers"]],
                    "body": bytes.fromhex(p["body"]),
                }
            )
        else:
            result = obj
    if "done" in result:
        return {"ok": True, "parts": parts, "error": None}
    return {"ok": False, "parts": parts, "error": (result["error"], result["reason"])}


def run_pm(content_type: str, body: bytes) -> dict:
    """python-multipart's MultipartParser with Starlette's checks on top
    (Content-Disposition parsed with parse_options_header, `name` required)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    parts: list[dict] = []
    state: dict = {"field": b"", "value": b"", "cur": None, "end": False}

    def on_part_begin() -> None:
        state["cur"] = {"headers": [], "body": b""}

    def on_header_field(d: bytes, s: int, e: int) -> None:
        state["field"] += d[s:e]

    def on_header_value(d: bytes, s: int, e: int) -> None:
        state["value"] += d[s:e]

    def on_header_end() -> None:
        state["cur"]["headers"].append((state["field"], state["value"]))
        state["field"] = state["value"] = b""

    def on_headers_finished() -> None:
        cur = state["cur"]
        cd = None
        ct = None
        for n, v in cur["headers"]:
            if n.lower() == b"content-disposition":
                cd = v
            elif n.lower() == b"content-type":
                ct = v
        _, opts = parse_options_header(cd)
        if b"name" not in opts:  # Starlette: "name" must be provided
            raise ValueError("no name")
        cur["name"] = opts[b"name"]
        cur["filename"] = opts.get(b"filename")
        cur["content_type"] = ct

    def on_part_data(d: bytes, s: int, e: int) -> None:
        state["cur"]["body"] += d[s:e]

    def on_part_end() -> None:
        parts.append(state["cur"])

    def on_end() -> None:
        state["end"] = True

    try:
        if not boundary:
            raise ValueError("no boundary")
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
                "on_part_end": on_part_end,
                "on_end": on_end,
            },
        )
        parser.write(body)
        parser.finalize()
    except Exception as exc:
        return {"ok": False, "parts": parts, "error": repr(exc), "end": state["end"]}
    return {"ok": True, "parts": parts, "error": None, "end": state["end"]}


# ---- the conformance suite ---------------------------------------------------------


def suite_cases() -> list[Path]:
    tests_dir = multipart_conformance.get_tests_dir()
    return sorted(p.parent for p in tests_dir.glob("*/*/test.json"))


def load(case: Path) -> tuple[dict, str, bytes]:
    spec = json.loads((case / "test.json").read_text())
    content_type = json.loads((case / "headers.json").read_text())["content-type"]
    return spec, content_type, (case / "input.raw").read_bytes()


def expected_body(p: dict) -> bytes | None:
    if p.get("body_text") is not None:
        return p["body_text"].encode()
    if p.get("body_base64") is not None:
        return base64.b64decode(p["body_base64"])
    return None


@pytest.mark.parametrize("case", suite_cases(), ids=lambda p: p.name)
def test_suite_case(dump: Path, case: Path) -> None:
    spec, content_type, body = load(case)
    expected = spec["expected"]
    whole = run_c(dump, content_type, body)
    # split anywhere: same outcome byte by byte and in 7-byte feeds
    assert run_c(dump, content_type, body, 1) == whole
    assert run_c(dump, content_type, body, 7) == whole

    if case.name in SUITE_DIFF:
        assert whole["ok"] != expected["valid"], f"{case.name} now agrees with the suite: update SUITE_DIFF"
        return
    assert whole["ok"] == expected["valid"], whole["error"]
    if not expected["valid"]:
        assert whole["error"][0] == 400 and whole["error"][1].startswith("multipart: ")
        return
    assert len(whole["parts"]) == len(expected["parts"])
    for got, exp in zip(whole["parts"], expected["parts"], strict=True):
        assert got["name"] == exp["name"].encode()
        exp_fn = exp.get("filename")
        assert got["filename_plain"] == (None if exp_fn is None else exp_fn.encode())
        if exp.get("filename_star") is not None:
            assert got["filename_star"] == 1
            assert got["filename"] == exp["filename_star"].encode()
        assert got["content_type"] == (None if exp.get("content_type") is None else exp["content_type"].encode())
        want = expected_body(exp)
        if want is not None:
            assert got["body"] == want
        if exp.get("body_sha256"):
            assert hashlib.sha256(got["body"]).hexdigest() == exp["body_sha256"]
        if exp.get("body_size") is not None:
            assert len(got["body"]) == exp["body_size"]


@pytest.mark.parametrize("case", suite_cases(), ids=lambda p: p.name)
def test_suite_vs_python_multipart(dump: Path, case: Path) -> None:
    _, content_type, body = load(case)
    ours = run_c(dump, content_type, body)
    theirs = run_pm(content_type, body)
    if case.name in PM_DIFF_SUITE:
        assert ours["ok"] != theirs["ok"], f"{case.name} now agrees with python-multipart: update PM_DIFF_SUITE"
        return
    assert ours["ok"] == theirs["ok"], (ours["error"], theirs["error"])
    if ours["ok"]:
        assert [p["name"] for p in ours["parts"]] == [p["name"] for p in theirs["parts"]]
        assert [p["body"] for p in ours["parts"]] == [p["body"] for p in theirs["parts"]]
        assert [p["filename_plain"] for p in ours["parts"]] == [p["filename"] for p in theirs["parts"]]


# ---- our own table: what the suite does not cover -------------------------------------

CT = "multipart/form-data; boundary=XyZ"
B = b"--XyZ\r\n"
END = b"--XyZ--\r\n"
CD = b'Content-Disposition: form-data; name="f"\r\n'

# (id, body, C parser accepts?, python-multipart accepts?, C reason or None)
OWN_CASES = [
    ("lookalike-delimiter-in-data", B + CD + b"\r\na\r\n--Xy\r\n-XyZ\r\n" + END, True, True, None),
    ("data-ending-in-cr", B + CD + b"\r\nab\r\r\n" + END, True, True, None),
    ("transport-padding", b"--XyZ \t\r\n" + CD + b"\r\nv\r\n--XyZ  \r\n" + CD + b"\r\nw\r\n" + END, True, False, None),
    (
        "boundary-then-text",
        B + CD + b"\r\nv\r\n--XyZx\r\n" + CD + b"\r\nw\r\n" + END,
        False,
        True,
        "multipart: boundary followed by other text",
    ),
    (
        "no-name",
        B + b"Content-Disposition: form-data\r\n\r\nv\r\n" + END,
        False,
        False,
        "multipart: part without a name",
    ),
    (
        "not-form-data",
        B + b'Content-Disposition: attachment; name="f"\r\n\r\nv\r\n' + END,
        False,
        True,
        "multipart: Content-Disposition is not form-data",
    ),
    (
        "unterminated-quote",
        B + b'Content-Disposition: form-data; name="f\r\n\r\nv\r\n' + END,
        False,
        True,
        "multipart: unterminated quoted string in Content-Disposition",
    ),
    (
        "header-without-colon",
        B + CD + b"Bogus\r\n\r\nv\r\n" + END,
        False,
        False,
        "multipart: part header without colon",
    ),
    ("nothing-after-boundary", B, False, True, "multipart: missing closing boundary"),
    ("empty-body", b"", False, True, "multipart: no boundary line in the body"),
    ("empty-form", END, True, True, None),
    ("epilogue-without-crlf", B + CD + b"\r\nv\r\n--XyZ--junk", True, True, None),
    (
        "filename-star-latin1",
        B + b"Content-Disposition: form-data; name=\"f\"; filename*=iso-8859-1''caf%E9.txt\r\n\r\nv\r\n" + END,
        True,
        True,
        None,
    ),
    (
        "filename-star-bad-utf8",
        B + b"Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%FF.txt\r\n\r\nv\r\n" + END,
        False,
        True,
        "multipart: filename* is not valid UTF-8",
    ),
    (
        "ie-full-path",
        B + b'Content-Disposition: form-data; name="f"; filename="C:\\\\dir\\\\a.txt"\r\n\r\nv\r\n' + END,
        True,
        True,
        None,
    ),
    (
        "percent-22-kept",
        B + b'Content-Disposition: form-data; name="f"; filename="a%22b.txt"\r\n\r\nv\r\n' + END,
        True,
        True,
        None,
    ),
]

# What python-multipart does differently in OWN_CASES, and why we differ.
PM_DIFF_OWN = {
    "boundary-then-text": (
        "python-multipart takes CRLF--boundary followed by other text as data; RFC 2046 forbids the boundary "
        "inside a part, we refuse (a clash means a broken or forged body, and holding the text back would "
        "need an unbounded buffer)"
    ),
    "transport-padding": (
        "python-multipart refuses LWSP between the boundary and its CRLF; RFC 2046 5.1.1 allows it "
        "(transport-padding), as we do (bounded)"
    ),
    "not-form-data": "python-multipart/Starlette do not check the disposition type",
    "unterminated-quote": "parse_options_header keeps the lone quote as part of the name",
    "nothing-after-boundary": "python-multipart does not check for the close delimiter",
    "empty-body": "same: an empty body is an empty form for python-multipart",
    "filename-star-bad-utf8": (
        "python-multipart ignores filename* entirely (RFC 7578 4.2 says senders must not use it); we decode "
        "it and refuse a broken one"
    ),
}


@pytest.mark.parametrize("case", OWN_CASES, ids=lambda c: c[0])
def test_own_case(dump: Path, case: tuple) -> None:
    name, body, c_ok, pm_ok, reason = case
    whole = run_c(dump, CT, body)
    for step in (1, 2, 3, 5):
        assert run_c(dump, CT, body, step) == whole
    assert whole["ok"] == c_ok, whole["error"]
    if not c_ok:
        assert whole["error"] == (400, reason)
    theirs = run_pm(CT, body)
    assert theirs["ok"] == pm_ok, theirs["error"]
    assert (c_ok != pm_ok) == (name in PM_DIFF_OWN)
    if c_ok and pm_ok:
        assert [p["body"] for p in whole["parts"]] == [p["body"] for p in theirs["parts"]]


def test_own_case_values(dump: Path) -> None:
    by_id = {c[0]: c[1] for c in OWN_CASES}
    r = run_c(dump, CT, by_id["lookalike-delimiter-in-data"])
    assert r["parts"][0]["body"] == b"a\r\n--Xy\r\n-XyZ"
    r = run_c(dump, CT, by_id["data-ending-in-cr"])
    assert r["parts"][0]["body"] == b"ab\r"
    r = run_c(dump, CT, by_id["filename-star-latin1"])
    assert r["parts"][0]["filename"] == "café.txt".encode()
    r = run_c(dump, CT, by_id["ie-full-path"])
    assert r["parts"][0]["filename"] == b"C:\\dir\\a.txt"  # kept as sent; python-multipart cuts to a.txt
    assert run_pm(CT, by_id["ie-full-path"])["parts"][0]["filename"] == b"a.txt"
    r = run_c(dump, CT, by_id["percent-22-kept"])
    assert r["parts"][0]["filename"] == b"a%22b.txt"


@pytest.mark.parametrize(
    "content_type, status, reason",
    [
        ("multipart/form-data", 400, "multipart: no boundary parameter in Content-Type"),
        ("text/plain; boundary=x", 415, "multipart: Content-Type is not multipart/form-data"),
        ("multipart/form-data; boundary=" + "a" * 71, 400, "multipart: boundary longer than 70 characters"),
        ('multipart/form-data; boundary="a "', 400, "multipart: boundary ends in a space"),
        ("multipart/form-data; boundary=a; boundary=b", 400, "multipart: more than one boundary parameter"),
    ],
)
def test_boundary_refused(dump: Path, content_type: str, status: int, reason: str) -> None:
    assert run_c(dump, content_type, b"")["error"] == (status, reason)
