"""Benchmark scripts that print figures; run them as ``python -m benchmarks.NAME`` from the repository root."""
