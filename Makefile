# The README's commands. Every target calls `setup` first, which installs
# what is missing and rebuilds only what changed.
SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
CMAKE := $(VENV)/bin/cmake
CTEST := $(VENV)/bin/ctest
CACHE := $(or $(CATZILLA_CACHE_DIR),$(HOME)/.cache/catzilla)
JEMALLOC_SRC := $(CACHE)/jemalloc-5.3.0.tar.bz2
export CATZILLA_CACHE_DIR := $(CACHE)

SOURCES := CMakeLists.txt pyproject.toml $(shell find csrc cmake src -type f 2>/dev/null)
C_TESTS := $(wildcard tests/c/*.c)
PIP_INSTALL := $(PY) -m pip install -q --no-build-isolation --no-deps

.PHONY: setup run test test-python test-malloc-only test-c test-asan clean

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
	  -C cmake.define.CATZILLA_USE_JEMALLOC=OFF -C build-dir=build/malloc-only/cmake .
	@touch $@

run: setup
	$(PY) examples/hello.py

test: setup test-c test-asan test-python test-malloc-only

test-python: setup
	$(PY) -m pytest -q tests

test-malloc-only: build/.malloc-only
	PYTHONPATH=$(ROOT)/build/malloc-only/site CATZILLA_EXPECT_BUILD=malloc-only \
	  $(PY) -m pytest -q tests/memory

# C unit tests, plain and under ASan+UBSan.
define ctest_build
	$(CMAKE) -S . -B build/$(1) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCATZILLA_BUILD_EXTENSION=OFF \
	  -DCATZILLA_BUILD_TESTS=ON -DCATZILLA_JEMALLOC_SOURCE=$(if $(wildcard $(JEMALLOC_SRC)),$(JEMALLOC_SRC),) $(2) >/dev/null
	$(CMAKE) --build build/$(1)
	$(CTEST) --test-dir build/$(1) --output-on-failure
endef

test-c: setup
	$(call ctest_build,ctest,)

test-asan: setup
	$(call ctest_build,asan,-DCATZILLA_SANITIZE=ON)

clean:
	rm -rf build
