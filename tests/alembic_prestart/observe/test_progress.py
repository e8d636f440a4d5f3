"""Per-revision progress from Alembic's own lines (observe/progress.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from alembic_prestart.observe import logs
from alembic_prestart.observe.progress import MigrationProgress

ROOT = Path("/srv/app")


def test_progress_lines(caplog: pytest.LogCaptureFixture) -> None:
    """A start line, `still running` every 5 s, and a duration, from Alembic's own lines."""
    now = [0.0]
    progress = MigrationProgress(["a1", "b2"], clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="alembic_prestart")
    logs.logger.propagate = True
    try:
        progress.observe("INFO  [alembic.runtime.migration] Running upgrade  -> a1, create users")
        now[0] = 5.2
        progress.tick()
        now[0] = 6.0
        progress.observe("INFO  [alembic.runtime.migration] Running upgrade a1 -> b2, add x")
        now[0] = 6.5
        progress.finish_revision()
    finally:
        logs.logger.propagate = False
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        'revision 1/2 a1 "create users" started',
        'still running revision 1/2 a1 "create users" (5 s)',
        'revision 1/2 a1 "create users" done in 6.0 s',
        'revision 2/2 b2 "add x" started',
        'revision 2/2 b2 "add x" done in 0.5 s',
    ]
