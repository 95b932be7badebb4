#!/usr/bin/env bash
# Makes sure `clang` can build libFuzzer programs with ASan and UBSan, as the
# fuzz build needs. Debian's clang comes without its sanitizer and libFuzzer
# runtime when installed without recommends (scripts/bootstrap does that):
# that is the package libclang-rt-dev. Installs clang and libclang-rt-dev
# with apt-get when the probe fails; does nothing when it passes.
set -euo pipefail

say() { printf 'fuzz toolchain: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

probe() {
    local tmp rc=0
    command -v clang >/dev/null || return 1
    tmp=$(mktemp -d)
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$tmp/probe.c"
    clang -fsanitize=fuzzer,address,undefined "$tmp/probe.c" -o "$tmp/probe" >/dev/null 2>&1 || rc=1
    rm -rf "$tmp"
    return $rc
}

probe && exit 0
command -v apt-get >/dev/null || {
    say "clang cannot build -fsanitize=fuzzer,address,undefined programs; install clang and its compiler-rt (libFuzzer, ASan, UBSan)"
    exit 1
}
say "installing clang and libclang-rt-dev (libFuzzer and sanitizer runtimes)"
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
probe || { say "clang still cannot link -fsanitize=fuzzer after installing libclang-rt-dev"; exit 1; }
