"""clfserve benchmarks: runtime latency (pytest-benchmark) and HTTP load (wrk); see README.md."""
