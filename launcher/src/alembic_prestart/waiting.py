"""How the launcher waits for anything it may not get at once: the database, the migration lock
(its own session's, and env.py's in the child), the SQLite file lock.

One policy: a deadline; pauses that start at `first` and double up to `most` (a fixed pause when
they are equal), never past the deadline, so the last try is made at it; progress said every
PROGRESS_EVERY_SECONDS, the first time at once; sleeps cut short when the caller is told to stop
(a signal). What is tried, what is said and what giving up means stay with each caller.
Standard library only: the Alembic child imports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PROGRESS_EVERY_SECONDS = 5.0
SLEEP_SLICE_SECONDS = 0.05  # how soon a sleep notices it should stop


class Patience:
    """One wait: its deadline, its next pause, when to say how it goes."""

    def __init__(self, timeout: float, *, first: float, most: float | None = None) -> None:
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self._pause = first
        self._most = first if most is None else most
        self._last_progress = float("-inf")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def progress_due(self) -> bool:
        """True the first time, then once every PROGRESS_EVERY_SECONDS."""
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_SECONDS:
            return False
        self._last_progress = now
        return True

    def next_pause(self) -> float:
        """How long to sleep before the next try: never past the deadline."""
        pause = max(0.0, min(self._pause, self.deadline - time.monotonic()))
        self._pause = min(self._pause * 2, self._most)
        return pause

    def sleep(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Sleep the next pause, or less when should_stop() turns true meanwhile."""
        end = time.monotonic() + self.next_pause()
        while not should_stop() and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, SLEEP_SLICE_SECONDS))
