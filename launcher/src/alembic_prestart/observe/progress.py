"""Progress of a running migration, read from Alembic's own log lines in the child's output.

One line as each revision starts and ends, with its message and duration, and one every 5 s
while a revision runs; the same text goes to systemd as STATUS=. Alembic logs
`Running upgrade <from> -> <to>, <message>` (logger alembic.runtime.migration) when a revision
starts; the next such line, or the child's exit, ends it. A project whose logging hides
Alembic's INFO lines simply gets no progress lines. The durations are kept (`timings`) for the
start report (observe/report.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from alembic_prestart.observe import logs, phases
from alembic_prestart.observe.report import RevisionTiming

STILL_RUNNING_EVERY_SECONDS = 5.0
_RUNNING = re.compile(r"Running upgrade (?P<from>.*?) -> (?P<to>\S+?)(?:, (?P<message>.*))?$")


class MigrationProgress:
    def __init__(
        self,
        planned: Sequence[str] | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._planned = list(planned) if planned else None
        self._clock = clock
        self._current: tuple[str, str] | None = None  # (revision, message)
        self._index = 0
        self._started = 0.0
        self._last_report = 0.0
        self.timings: list[RevisionTiming] = []  # each revision that ran, in order

    def _position(self) -> str:
        total = len(self._planned) if self._planned else None
        return f"{self._index}/{total}" if total and self._index <= total else f"{self._index}"

    def _label(self) -> str:
        assert self._current is not None
        revision, message = self._current
        return f"revision {self._position()} {revision}" + (f' "{message}"' if message else "")

    def observe(self, line: str) -> None:
        """Called with each line of the child's output."""
        match = _RUNNING.search(line)
        if not match:
            return
        self.finish_revision()
        self._index += 1
        self._current = (match["to"], (match["message"] or "").strip())
        self._started = self._last_report = self._clock()
        logs.logger.info("%s started", self._label())
        phases.enter(phases.MIGRATING, self._label())

    def tick(self) -> None:
        """Called now and then while the child runs."""
        if self._current is None:
            return
        now = self._clock()
        if now - self._last_report >= STILL_RUNNING_EVERY_SECONDS:
            self._last_report = now
            text = f"still running {self._label()} ({now - self._started:.0f} s)"
            logs.logger.info("%s", text)
            phases.enter(phases.MIGRATING, text)

    def finish_revision(self) -> None:
        """The running revision ended: its duration (the child exited, or the next began)."""
        if self._current is None:
            return
        seconds = self._clock() - self._started
        logs.logger.info("%s done in %.1f s", self._label(), seconds)
        self.timings.append(RevisionTiming(*self._current, seconds))
        self._current = None

    def abandon(self) -> None:
        """The child failed or was stopped: the running revision did not finish."""
        if self._current is not None:
            seconds = self._clock() - self._started
            logs.logger.info("%s did not finish (%.1f s)", self._label(), seconds)
            self.timings.append(RevisionTiming(*self._current, seconds, finished=False))
        self._current = None
