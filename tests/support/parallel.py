"""Independent slow cases (each starting its own processes) run side by side, each case's test
then reporting its own outcome."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def run_all(jobs: dict[str, Callable[[], None]], workers: int) -> dict[str, BaseException | None]:
    """Each job on a thread of a pool: what each raised (None: it passed)."""

    def outcome(job: Callable[[], None]) -> BaseException | None:
        try:
            job()
        except BaseException as error:  # reported by the case's own test
            return error
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(outcome, job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}
