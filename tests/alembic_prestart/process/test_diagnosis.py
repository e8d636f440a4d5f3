"""The cause named from a failed child's output (process/diagnosis.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic_prestart.process.diagnosis import diagnose

ROOT = Path("/srv/app")


@pytest.mark.parametrize(
    ("tail", "cause"),
    [
        (
            [
                "asyncpg.exceptions.ConnectionDoesNotExistError: connection was closed in the "
                "middle of operation"
            ],
            "connection was lost",
        ),
        (
            [
                "sqlalchemy.exc.PendingRollbackError: Can't reconnect until invalid transaction "
                "is rolled back.  Please rollback() fully before proceeding"
            ],
            "connection was lost",
        ),
        (["canceling statement due to lock timeout"], "lock timeout"),
        (
            ['File "/p/migrations/versions/x_0002.py", line 17, in upgrade', "ValueError: boom"],
            "exception in revision migrations/versions/x_0002.py, line 17: ValueError: boom",
        ),
        (["FAILED: Multiple head revisions are present"], "multiple heads"),
        ([], "no output"),
    ],
)
def test_diagnosis_names_the_cause(tail: list[str], cause: str) -> None:
    """A failed child's output becomes one line naming its cause."""
    assert cause in diagnose(tail)
