"""Wait until the database accepts a session, or fail fast when waiting cannot help.

Connection-level failures (refused, reset, name not resolved, server starting up, timeouts,
replies no PostgreSQL server sends) are retried with capped exponential backoff until
--db-wait is spent, with a last attempt at the deadline; every attempt's whole exchange is
bounded by what is left. Authentication failures, a missing database and a URL asyncpg rejects
are configuration errors and fail at once (exit 78).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from alembic_prestart.db.session import (
    Interrupted,
    PostgresSession,
    RetryableError,
    read_sqlite_versions,
)
from alembic_prestart.db.url import DatabaseURL
from alembic_prestart.errors import EXIT_DATABASE_UNAVAILABLE, SupervisorError
from alembic_prestart.observe import logs
from alembic_prestart.waiting import Patience

FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 2.0
ATTEMPT_TIMEOUT_SECONDS = 5.0
# The last attempt, made at the deadline, still gets this long: a connection takes time.
LAST_ATTEMPT_SECONDS = 1.0


@dataclass
class DatabaseState:
    """What the first successful session saw, and the session itself (PostgreSQL), kept open
    for the migration lock."""

    versions: tuple[str, ...] | None  # None: no version table yet
    session: PostgresSession | None = None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def wait_for_database(
    url: DatabaseURL,
    *,
    schema: str,
    timeout: float,
    application_name: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> DatabaseState | None:
    """A session and the version table, within `timeout` seconds; None if should_stop()."""
    if url.is_sqlite:
        return DatabaseState(versions=read_sqlite_versions(url.sqlite_path))
    patience = Patience(timeout, first=FIRST_DELAY_SECONDS, most=MAX_DELAY_SECONDS)
    deadline = patience.deadline
    attempts = 0
    while not should_stop():
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            session = PostgresSession.connect(
                url,
                timeout=min(ATTEMPT_TIMEOUT_SECONDS, max(remaining, LAST_ATTEMPT_SECONDS)),
                application_name=application_name,
                should_stop=should_stop,
            )
            # The first queries are part of the wait: a server that accepts a session and then
            # never answers (an impostor, a wedged backend) costs no more than --db-wait.
            query_timeout = max(deadline - time.monotonic(), LAST_ATTEMPT_SECONDS)
            try:
                state = DatabaseState(
                    versions=session.versions(schema, timeout=query_timeout), session=session
                )
                where = session.connected_to(timeout=query_timeout)
            except BaseException:
                session.close()
                raise
            logs.logger.info("connected to %s, schema %s", where, schema)
            return state
        except Interrupted:
            return None
        except RetryableError as error:
            if patience.expired():
                raise SupervisorError(
                    f"database unreachable for {patience.elapsed():.1f}s (--db-wait "
                    f"{timeout:g}, {attempts} attempt{'s' if attempts > 1 else ''}) at "
                    f"{url.display()}: {error}",
                    EXIT_DATABASE_UNAVAILABLE,
                ) from None
            if patience.progress_due():
                logs.logger.info(
                    "waiting for the database at %s (%.0fs of %gs): %s",
                    url.display(),
                    patience.elapsed(),
                    timeout,
                    error,
                )
            # Never past the deadline: the last attempt is made at it.
            patience.sleep(should_stop)
    return None
