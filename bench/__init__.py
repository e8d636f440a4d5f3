"""Benchmarks: start-up, API throughput against raw asyncpg, and replicas. Timings live here,
never in tests/. Each script's docstring gives the command that runs it."""
