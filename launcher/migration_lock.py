"""The launcher holds the migration lock itself while its alembic child runs.

When eight replicas start at once, each would otherwise start an alembic child (half a second
of imports each, on shared cores) only for seven of them to queue on env.py's lock and find
nothing to do. Instead each launcher first takes the same advisory lock on a light connection
of its own (launcher/pgwire.py): the first one migrates; the others wait, read the version
again once the lock is theirs, and start no child at all when the work is done. The child is
told which session holds the lock for it (MIGRATION_LOCK_HOLDER, the session's server pid)
and checks in pg_locks that this very session holds it.

A lock session dies with the launcher, so a crash never leaves the lock behind. Whenever the
light client cannot be used (TLS, other authentication), nothing is held here and env.py takes
the lock itself, as it does for a bare `alembic upgrade head`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from launcher import logs, pgwire
from launcher.errors import EXIT_MIGRATION_TIMEOUT, SupervisorError
from launcher.lock_key import advisory_lock_key, holder_query
from launcher.settings import Settings
from launcher.signals import SignalState

POLL_SECONDS = 0.1
LOG_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class HeldLock:
    session: pgwire.Session
    backend_pid: int  # the lock session's server pid, which the child checks in pg_locks


@contextmanager
def hold_migration_lock(
    settings: Settings, signals: SignalState, application_name: str
) -> Iterator[HeldLock | None]:
    """The lock held for the block, or None when env.py must take it itself."""
    url = settings.database_url
    if not url.is_postgres:
        yield None
        return
    try:
        session = pgwire.connect(url, timeout=5.0, application_name=application_name)
    except pgwire.Unsupported:
        yield None
        return
    with session:
        try:
            backend_pid = int(str(session.query("SELECT pg_backend_pid()")[0][0]))
            acquired = _acquire(session, settings, signals)
        except (pgwire.Unsupported, pgwire.QueryError):
            acquired = False
        if not acquired:
            # The server may have granted a lock whose reply we never read: end the session,
            # or env.py would wait on our own lock.
            session.close()
            yield None
            return
        yield HeldLock(session, backend_pid)


def _acquire(session: pgwire.Session, settings: Settings, signals: SignalState) -> bool:
    database = str(session.query("SELECT current_database()")[0][0])
    key = advisory_lock_key(database, settings.schema)
    started = time.monotonic()
    last_log = float("-inf")
    while session.query(f"SELECT pg_try_advisory_lock({key})")[0][0] != "t":
        if signals.received is not None:
            return False  # the caller stops; closing the session is all the cleanup needed
        now = time.monotonic()
        if now - started > settings.migration_timeout:
            raise SupervisorError(
                f"waited {settings.migration_timeout:g}s (--migration-timeout) for the "
                "migration lock; the server was not started",
                EXIT_MIGRATION_TIMEOUT,
            )
        if now - last_log >= LOG_EVERY_SECONDS:
            rows = session.query(holder_query(key))
            holder = f"pid {rows[0][0]} ({rows[0][1]!r})" if rows else "a session now gone"
            logs.logger.info(
                "waiting for the migration lock held by %s, for %.0fs", holder, now - started
            )
            last_log = now
        time.sleep(POLL_SECONDS)
    return True
