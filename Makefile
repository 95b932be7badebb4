# The README's commands. Every target calls `setup` first, which installs
# what is missing and rebuilds only what changed.
SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
# CI (CI=true) runs a failed Python test once more before failing the run: the
# server tests use real sockets and timers on a shared 2-CPU machine, where one
# starved thread can miss a deadline. A rerun is reported by name ("RERUN"), so
# a flaky test still shows; one that fails twice fails the run.
PYTEST_CI := $(if $(CI),--reruns 1 --reruns-delay 2,)
CMAKE := $(VENV)/bin/cmake
CTEST := $(VENV)/bin/ctest
SOURCES := CMakeLists.txt pyproject.toml $(shell find csrc cmake src third_party -type f 2>/dev/null)
C_TESTS := $(wildcard tests/c/*.c)
PIP_INSTALL := $(PY) -m pip install -q --no-build-isolation --no-deps

.PHONY: bench-memory setup run test test-python test-malloc-only test-c test-asan clean wheel lint test-pythons test-pythons-ci

setup: build/.bootstrap build/.installed

build/.bootstrap: scripts/bootstrap scripts/requirements-dev.txt
	@mkdir -p build
	scripts/bootstrap
	@touch $@

# The package, built with jemalloc, into .venv.
build/.installed: build/.bootstrap $(SOURCES)
	$(PIP_INSTALL) .
	@touch $@

# The malloc-only variant (CATZILLA_USE_JEMALLOC=OFF), in its own build
# directory, installed beside the repo for PYTHONPATH.
build/.malloc-only: build/.bootstrap $(SOURCES)
	rm -rf build/malloc-only/site
	$(PIP_INSTALL) --target build/malloc-only/site \
	  -C cmake.define.CATZILLA_USE_JEMALLOC=OFF -C cmake.define.CATZILLA_USE_MIMALLOC=OFF \
	  -C build-dir=build/malloc-only/cmake .
	@touch $@

# The extension with ASan+UBSan, malloc only: ASan sees every buffer of the
# C core only when it comes from malloc (jemalloc's arenas are opaque to it).
build/.asan-ext: build/.bootstrap $(SOURCES)
	rm -rf build/asan-ext/site
	$(PIP_INSTALL) --target build/asan-ext/site -C cmake.define.CATZILLA_SANITIZE=ON \
	  -C cmake.define.CATZILLA_USE_JEMALLOC=OFF -C cmake.build-type=Debug -C build-dir=build/asan-ext/cmake .
	@touch $@

run: setup
	$(PY) examples/hello.py

test: setup lint test-c test-asan test-python test-pythons-ci test-malloc-only test-static test-fuzz

test-python: setup
	$(PY) -m pytest -q $(PYTEST_CI) tests

test-malloc-only: build/.malloc-only
	PYTHONPATH=$(ROOT)/build/malloc-only/site CATZILLA_EXPECT_BUILD=malloc-only \
	  $(PY) -m pytest -q tests/memory

# C unit tests, plain and under ASan+UBSan.
define ctest_build
	$(CMAKE) -S . -B build/$(1) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCATZILLA_BUILD_EXTENSION=OFF \
	  -DCATZILLA_BUILD_TESTS=ON $(2) >/dev/null
	$(CMAKE) --build build/$(1)
	$(CTEST) --test-dir build/$(1) --output-on-failure
endef

test-c: setup
	$(call ctest_build,ctest,)

# C unit tests and the HTTP protocol tests against the sanitized extension
# (CPython itself is not instrumented: the ASan runtime is preloaded, and
# leak detection is left to the memory layer's own accounting tests).
ASAN_RUNTIME = $(shell gcc -print-file-name=libasan.so)
test-asan: setup build/.asan-ext
	$(call ctest_build,asan,-DCATZILLA_SANITIZE=ON)
	LD_PRELOAD=$(ASAN_RUNTIME) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  PYTHONPATH=$(ROOT)/build/asan-ext/site CATZILLA_EXPECT_BUILD=malloc-only \
	  $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_CI) tests/server tests/hardening tests/framework/test_direct.py tests/framework/test_shapes.py \
	  tests/framework/test_json_write.py tests/framework/test_form_limits.py tests/framework/test_response_background.py \
	  tests/memory/test_process_scope.py

clean:
	rm -rf build

# The distributable wheel, as a user's `pip wheel .` makes it (isolated build
# environment from PyPI, sources from the cache or downloaded), in its own
# build directory; auditwheel then gives it its manylinux tag, and refuses it
# if it needs a library outside the policy (libuv.so, say). Result in dist/.
wheel: build/.bootstrap
	rm -rf build/wheel/dist && mkdir -p dist
	$(PY) -m pip wheel --no-deps -w build/wheel/dist -C build-dir=build/wheel/cmake .
	PATH=$(VENV)/bin:$$PATH $(PY) -m auditwheel repair --wheel-dir dist build/wheel/dist/catzilla-*.whl
	$(PY) -m auditwheel show $$(ls -t dist/catzilla-*manylinux*.whl | head -1)

# ---- lint and type gates --------------------------------------------------------------
# ruff (lint and format) and mypy as configured in pyproject.toml, stubtest
# for src/catzilla/_core.pyi against the built extension, clang-format
# (.clang-format) over the C sources. Fix with `ruff check --fix`, `ruff
# format` and `clang-format -i`.
C_FORMATTED := $(sort $(shell find csrc tests/c tests/fuzz -name '*.[ch]'))

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest catzilla._core
	$(VENV)/bin/clang-format --dry-run --Werror $(C_FORMATTED)

# ---- the Python suite under each supported interpreter ----------------------------------
# Each found interpreter (pyenv's, else pythonX.Y on PATH) gets its own venv
# and build directory in build/py3.X/ (jemalloc from the same source cache);
# one that is absent is skipped with a message. `make test` runs the oldest
# and the newest; `make test-pythons` all of them. tests/build is left out:
# it tests CMake, not the interpreter.
PYTHONS := 3.10 3.11 3.12 3.13
CI_PYTHONS := $(firstword $(PYTHONS)) $(lastword $(PYTHONS))
PYENV_VERSIONS := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
python_for = $(firstword $(wildcard $(PYENV_VERSIONS)/$(1).*/bin/python$(1)) $(shell command -v python$(1) 2>/dev/null))

build/py3.%/.installed: build/.bootstrap $(SOURCES)
	PYTHON=$(call python_for,3.$*) VENV=$(ROOT)/build/py3.$*/venv scripts/bootstrap
	$(ROOT)/build/py3.$*/venv/bin/python -m pip install -q --no-build-isolation --no-deps \
	  -C build-dir=build/py3.$*/cmake .
	@touch $@

test-py3.%: build/.bootstrap
	@if [ -z "$(call python_for,3.$*)" ]; then \
	  echo "test-py3.$*: Python 3.$* is not installed here: skipped"; \
	else \
	  $(MAKE) --no-print-directory build/py3.$*/.installed && \
	  echo "test-py3.$*: $$($(ROOT)/build/py3.$*/venv/bin/python -VV | head -1)" && \
	  $(ROOT)/build/py3.$*/venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_CI) --ignore=tests/build tests; \
	fi

test-pythons: $(addprefix test-py,$(PYTHONS))

test-pythons-ci: $(addprefix test-py,$(CI_PYTHONS))

# Slowloris, slow body, slow read and abandoned async requests, 1,000
# connections each against max_connections=500 (benchmarks/attacks.py); the
# figures as a table (docs/security.md). Loopback only, about a minute. Not
# part of `make test`; tests/hardening/test_attacks.py runs them small.
# Extra flags: make test-attacks ATTACK_ARGS="--scenario slow-read --duration 20".
.PHONY: test-attacks
test-attacks: setup
	$(PY) -m benchmarks.attacks --connections 1000 --scenario all $(ATTACK_ARGS)

# JSON (benchmarks/json_read.py, json_write.py, json_echo.py): the C reader
# against json.loads and orjson.loads, the C writer against json.dumps and
# orjson.dumps, then the 10 KiB echo with wrk before and with the reader;
# results in benchmarks/results/json_read.md, json_write.md and json_echo.md.
.PHONY: bench-json
bench-json: setup
	$(PY) -m benchmarks.json_read $(BENCH_ARGS)
	$(PY) -m benchmarks.json_write $(BENCH_ARGS)
	$(PY) -m benchmarks.json_echo

# Benchmarks (benchmarks/README.md): each server in its own venv under
# benchmarks/.venvs/, created on demand; results in benchmarks/results/.
# `make bench` is the full suite (about an hour), then the TechEmpower-style
# suite (bench-tfb) and worker scaling (bench-workers); `make bench-quick` < 5 min.
# Extra harness flags: make bench BENCH_ARGS="--servers catzilla,nginx".
.PHONY: bench bench-quick bench-env bench-streaming bench-uploads bench-async bench-tfb bench-workers

bench-env: setup
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	@$(ROOT)/benchmarks/.venvs/bench/bin/python -c "import matplotlib" 2>/dev/null || { \
	  $$($(PY) -c "import sys; print(sys._base_executable)") -m venv $(ROOT)/benchmarks/.venvs/bench && \
	  $(ROOT)/benchmarks/.venvs/bench/bin/python -m pip install -q --disable-pip-version-check \
	    -r $(ROOT)/benchmarks/peers/bench.txt; }

bench: bench-env
	$(ROOT)/benchmarks/.venvs/bench/bin/python -m benchmarks.run --profile full $(BENCH_ARGS)
	$(ROOT)/benchmarks/.venvs/bench/bin/python -m benchmarks.tfb $(TFB_ARGS)
	$(ROOT)/benchmarks/.venvs/bench/bin/python -m benchmarks.workers

# The TechEmpower-style suite (benchmarks/tfb.py): JSON, plaintext pipelined x16,
# single query, queries 1 and 20, fortunes, updates 1 and 20, cached queries,
# against a PostgreSQL the harness starts, seeds and removes (Debian's
# `postgresql`, installed with apt when missing; skipped with a message where
# it cannot be). Catzilla (asyncpg async, psycopg sync) against FastAPI,
# BlackSheep, Granian RSGI, Socketify and Robyn; results in
# benchmarks/results/tfb/. About 20 minutes at the default 3 x 5 s per test;
# e.g. make bench-tfb TFB_ARGS="--servers catzilla,fastapi --tests db,fortunes --duration 3".
bench-tfb: bench-env
	$(ROOT)/benchmarks/.venvs/bench/bin/python -m benchmarks.tfb $(TFB_ARGS)

# Worker scaling (benchmarks/workers.py): Catzilla's TFB app with workers=1 and
# workers=2 on hello and the database tests, nothing pinned (the workers, wrk
# and PostgreSQL share the 2 CPUs), req/s and CPU time per request; results in
# benchmarks/results/workers/. About 3 minutes.
bench-workers: bench-env
	$(ROOT)/benchmarks/.venvs/bench/bin/python -m benchmarks.workers $(BENCH_ARGS)

bench-quick: bench-env
	$(ROOT)/benchmarks/.venvs/bench/bin/python -m benchmarks.run --profile quick $(BENCH_ARGS)

# Form uploads (benchmarks/uploads.py): Catzilla against FastAPI and
# catzilla 0.2.3.
bench-uploads: bench-env
	$(ROOT)/benchmarks/.venvs/bench/bin/python -m benchmarks.uploads $(BENCH_ARGS)

# Memory study v2 (benchmarks/memstudy2.py): glibc, jemalloc and mimalloc at
# process scope, FastAPI/uvicorn and Granian beside (their own venvs); JSON
# documents, mixed bodies, a 10-minute churn, async; 3 runs, tables and plots.
bench-memory: setup
	$(PY) -m benchmarks.memstudy2 $(BENCH_ARGS)

# Async handlers' hand-over to the asyncio thread (benchmarks/async_path.py):
# server CPU per request, `def` against `async def` hello world;
# BENCH_ARGS='--before build/site-before' measures another build beside.
bench-async: bench-env
	$(PY) -m benchmarks.async_path $(BENCH_ARGS)

# Files, static directories and streams (benchmarks/streaming.py): Catzilla
# against nginx, Starlette, Granian and catzilla 0.2.3 on static files; stream
# throughput; RSS while a 1 GiB file and a 1 GiB stream go out.
bench-streaming: bench-env
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }
	$(ROOT)/benchmarks/.venvs/bench/bin/python -m benchmarks.streaming $(BENCH_ARGS)

# WebSockets (benchmarks/websocket_bench.py): echo of 32 B and 16 KiB messages
# over 64 and 1,000 connections and a 1-to-1,000 broadcast (messages/s, p99),
# and memory per idle connection over 10,000, against socketify, uvicorn,
# FastAPI and Granian; the load generator is C (benchmarks/wsload/wsload.c).
# About 6 minutes; `make bench-ws BENCH_ARGS=--quick` in about 1.
.PHONY: bench-ws autobahn
bench-ws: setup
	$(PY) -m benchmarks.websocket_bench $(BENCH_ARGS)

# Autobahn|Testsuite's fuzzingclient (benchmarks/autobahn.py), cases 1-7, 9
# and 12-13, against the Catzilla echo app (benchmarks/apps/catzilla_ws.py);
# the suite runs on Python 2.7 in build/autobahn/venv, made on demand. Fails if
# any case FAILED. Another server: make autobahn AUTOBAHN_ARGS='--agent NAME
# --server "CMD {port}" --out DIR'.
autobahn: setup
	$(PY) -m benchmarks.autobahn $(AUTOBAHN_ARGS)

# ---- fuzzing and static checks (tests/fuzz/README.md) -------------------------------
# `make fuzz`: each libFuzzer harness for FUZZ_SECONDS (default 300) on the seed
# corpus; what it learns stays in build/fuzz/work. `make test-fuzz`: replays the
# regression inputs and seeds, then a bounded pass of FUZZ_SHORT_SECONDS per
# harness from an empty corpus; any crash, leak or broken invariant fails it.
# `make test-static`: cppcheck over csrc/ in the jemalloc and malloc-only builds.
FUZZ_SECONDS ?= 300
FUZZ_SHORT_SECONDS ?= 25
FUZZ_HARNESSES := request router multipart ws json
FUZZ_BUILD := build/fuzz
.PHONY: fuzz-build fuzz test-fuzz test-static

fuzz-build: setup
	tests/fuzz/toolchain.sh
	$(CMAKE) -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DCATZILLA_BUILD_EXTENSION=OFF -DCATZILLA_USE_JEMALLOC=OFF -DCATZILLA_BUILD_FUZZ=ON >/dev/null
	$(CMAKE) --build $(FUZZ_BUILD) --target $(addprefix fuzz_,$(FUZZ_HARNESSES))

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

test-fuzz: fuzz-build
	tests/fuzz/run.sh --replay --fresh $(FUZZ_BUILD) $(FUZZ_SHORT_SECONDS) $(FUZZ_HARNESSES)

# cppcheck reads each build's compile_commands.json (CMake exports it), so it
# sees the flags, defines and include paths the compiler saw: the jemalloc
# build of `make setup` and the malloc-only build. Vendored llhttp is not ours.
# cppcheck reads no system header, so the macros csrc/ tests from them
# (__GLIBC__, SO_REUSEPORT, ...) come from the compiler: build/static/platform.h.
CPPCHECK_FLAGS := --enable=warning,performance,portability --error-exitcode=1 --quiet \
  --platform=unix64 --library=posix --library=python --inline-suppr \
  --suppressions-list=tests/static/cppcheck-suppressions.txt -ithird_party -ibuild \
  --include=build/static/platform.h

test-static: setup build/.malloc-only
	@command -v cppcheck >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cppcheck >/dev/null; }
	@mkdir -p build/static && $${CC:-cc} -dM -E -include sys/socket.h -x c /dev/null > build/static/platform.h
	cppcheck $(CPPCHECK_FLAGS) --project=$$(ls -t build/cp3*/compile_commands.json | head -1)
	cppcheck $(CPPCHECK_FLAGS) --project=build/malloc-only/cmake/compile_commands.json
	@echo "cppcheck: csrc/ clean in the jemalloc and the malloc-only configuration"

# FastAPI's tutorial apps and their tests, ported by changing imports only
# (scripts/compat.py): downloads FastAPI's pinned sdist once into build/compat
# and writes the pass rate per category to docs/compat.md. Not part of `test`.
.PHONY: compat
compat: setup
	$(PY) scripts/compat.py
