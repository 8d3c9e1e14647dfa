"""HTTP load benchmark of `clfserve serve` driven by wrk (run.py)."""
