"""Process scope: the app's allocator also takes the interpreter's memory.

Each case runs in a fresh interpreter: the switch is once per process and
permanent. Blocks made before it must stay with the allocator that made them,
which every case exercises by freeing objects from both sides.
"""

from __future__ import annotations

import json

import pytest

from catzilla import Catzilla
from tests.conftest import EXPECT_BUILD, run_python

BACKENDS = [b for b in ("jemalloc", "mimalloc") if b in Catzilla.get_available_allocators()]
needs_backend = pytest.mark.skipif(not BACKENDS, reason="this build has neither jemalloc nor mimalloc")

# Objects on both sides of the switch, freed in mixed order, then churn.
CHURN = """
import gc, json, threading, zlib
from catzilla import Catzilla, _core
before = [bytes(3000) for _ in range(2000)] + [{{"k": i}} for i in range(20000)] + ["s" * i for i in range(2000)]
app = Catzilla({args})
after = [bytes(3000) for _ in range(2000)] + [{{"k": i}} for i in range(20000)] + ["s" * i for i in range(2000)]
owned = [_core._process_heap_owns(before[0]), _core._process_heap_owns(after[0]), _core._process_heap_owns(after[-1])]
mixed = before[::2] + after[1::2]
del before, after
gc.collect()
# threads that allocate without the GIL (zlib's buffers come from the raw domain) while this one churns
def squeeze():
    data = bytes(range(256)) * 4096
    for _ in range(40):
        assert zlib.decompress(zlib.compress(data)) == data
workers = [threading.Thread(target=squeeze) for _ in range(3)]
for w in workers: w.start()
cache = {{}}
for i in range(200000):
    cache[i % 5000] = ["x" * (i % 700), {{"n": i}}, (i, str(i))]
for w in workers: w.join()
del mixed
stats = app.get_memory_stats()
print(json.dumps({{"info": app.get_allocator_info(), "owned": owned, "python": stats["arenas"].get("python"),
                  "heap": _core.process_heap_stats(), "reason": stats["allocator_scope_reason"],
                  "allocated_mb": stats["allocated_mb"]}}))
"""


def churn(args: str, env: dict[str, str] | None = None) -> dict:
    out = run_python(CHURN.format(args=args), env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@needs_backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_process_scope_governs_new_objects_and_frees_old_ones_where_they_came_from(backend: str) -> None:
    r = churn(f"allocator={backend!r}")
    assert r["info"]["current_allocator"] == backend
    assert r["info"]["allocator_scope"] == "process"
    assert r["owned"] == [False, True, True]  # made before the switch: not ours; after: ours
    assert r["heap"]["backend"] == backend and r["heap"]["pymalloc"] is True
    python = r["python"]
    assert python is not None and python["allocated_bytes"] > 1 << 20
    assert python["allocation_count"] > 0
    assert r["allocated_mb"] * (1 << 20) >= python["allocated_bytes"]  # the totals include it


@needs_backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_bypassing_pymalloc_puts_small_objects_on_the_heap_too(backend: str) -> None:
    r = churn(f"allocator={backend!r}", {"CATZILLA_BYPASS_PYMALLOC": "1"})
    assert r["owned"] == [False, True, True]
    assert r["heap"]["pymalloc"] is False
    # every small object is one block of its own now
    assert r["heap"]["nmalloc"] > 100000


@pytest.mark.skipif(EXPECT_BUILD == "malloc-only", reason="needs jemalloc")
def test_the_default_app_governs_the_process() -> None:
    r = churn("")
    assert r["info"]["current_allocator"] == "jemalloc" and r["info"]["allocator_scope"] == "process"
    assert r["reason"] is None


@pytest.mark.parametrize(
    ("args", "env", "reason"),
    [
        ("use_jemalloc=False", {}, "malloc backend has no process heap"),
        ("allocator='malloc'", {}, "malloc backend has no process heap"),
        ("allocator_scope='app'", {}, None),
        ("", {"CATZILLA_ALLOCATOR_SCOPE": "app"}, None),
    ],
    ids=["use_jemalloc_false", "malloc", "app_scope", "app_scope_env"],
)
def test_the_interpreter_is_left_alone(args: str, env: dict[str, str], reason: str | None) -> None:
    r = churn(args, env)
    assert r["info"]["allocator_scope"] == "app"
    assert r["heap"] is None and r["python"] is None
    assert r["owned"] == [False, False, False]
    assert (r["reason"] is None) if reason is None else (reason in r["reason"])


@needs_backend
def test_a_second_app_leaves_the_interpreter_to_the_first() -> None:
    out = run_python(
        f"""
import json
from catzilla import Catzilla
first = Catzilla(allocator={BACKENDS[0]!r})
second = Catzilla(allocator={BACKENDS[-1]!r})
first.close()
del first
third = Catzilla()
print(json.dumps([a.get_allocator_info()["allocator_scope"] for a in (second, third)]
                 + [second.get_memory_stats()["allocator_scope_reason"]]))
"""
    )
    assert out.returncode == 0, out.stderr
    scopes = json.loads(out.stdout)
    assert scopes[:2] == ["app", "app"]
    assert "already governs" in scopes[2]


@needs_backend
def test_tracemalloc_keeps_the_app_scope() -> None:
    out = run_python(
        f"""
import json, tracemalloc
tracemalloc.start()
from catzilla import Catzilla
app = Catzilla(allocator={BACKENDS[0]!r})
x = [str(i) for i in range(1000)]
tracemalloc.stop()
print(json.dumps([app.get_allocator_info()["allocator_scope"], app.get_memory_stats()["allocator_scope_reason"]]))
"""
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["app", "tracemalloc is tracing"]


@needs_backend
def test_tracemalloc_started_afterwards_wraps_the_heap() -> None:
    out = run_python(
        f"""
import tracemalloc
from catzilla import Catzilla
app = Catzilla(allocator={BACKENDS[0]!r})
tracemalloc.start()
x = [str(i) * 10 for i in range(10000)]
size, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
del x
y = [str(i) * 10 for i in range(10000)]
print(size > 100000, app.get_allocator_info()["allocator_scope"])
"""
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "process"]


def test_allocator_and_use_jemalloc_must_agree() -> None:
    with pytest.raises(ValueError, match="use_jemalloc=False and allocator='jemalloc' disagree"):
        Catzilla(use_jemalloc=False, allocator="jemalloc")
    with pytest.raises(ValueError, match="allocator must be one of"):
        Catzilla(allocator="tcmalloc")
    with pytest.raises(ValueError, match="allocator_scope must be 'process' or 'app', got 'thread'"):
        Catzilla(allocator_scope="thread")


# ---- the switch before any import (CATZILLA_PROCESS_HEAP, what `catzilla run` sets) -----------------

EARLY = """
import json
from catzilla import Catzilla, _core
made_before_the_app = bytes(300_000)  # a block of its own (small objects may reuse old pymalloc pools)
app = Catzilla({args})
fresh = bytes(200000)
heap = _core.process_heap_stats()
print(json.dumps({{"scope": app.get_allocator_info()["allocator_scope"], "suspended": heap["suspended"],
                  "unclaimed": heap["unclaimed"], "import_owned": _core._process_heap_owns(made_before_the_app),
                  "fresh_owned": _core._process_heap_owns(fresh)}}))
"""


@needs_backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_heap_opened_at_import_is_taken_by_the_app(backend: str) -> None:
    out = run_python(EARLY.format(args=f"allocator={backend!r}"), {"CATZILLA_PROCESS_HEAP": backend})
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r == {"scope": "process", "suspended": False, "unclaimed": False, "import_owned": True, "fresh_owned": True}


@needs_backend
@pytest.mark.parametrize("args", ["use_jemalloc=False", "allocator_scope='app'"])
def test_an_app_that_wants_no_process_scope_suspends_a_heap_opened_at_import(args: str) -> None:
    out = run_python(EARLY.format(args=args), {"CATZILLA_PROCESS_HEAP": BACKENDS[0]})
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    # what import made stays where it is; what the app's process makes now goes to the old allocator
    assert r == {"scope": "app", "suspended": True, "unclaimed": True, "import_owned": True, "fresh_owned": False}
