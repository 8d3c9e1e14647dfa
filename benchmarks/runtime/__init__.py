"""Runtime latency benchmarks (pytest-benchmark)."""
