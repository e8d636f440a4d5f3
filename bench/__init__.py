"""Benchmarks: start-up, API throughput (against FastAPI's floor and the ORM way), SQLite under
several workers, and replicas. Timings live here, never in tests/. Each script's docstring gives
the command that runs it."""
