"""Fakes of vendor services (real HTTP servers on 127.0.0.1) for connector tests and benchmarks."""
