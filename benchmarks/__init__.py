"""Catzilla's benchmark suite: `make bench` (full) and `make bench-quick`. See benchmarks/README.md."""
