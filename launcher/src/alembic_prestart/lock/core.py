"""The migration lock: one migrator per database and schema, whoever starts it.

PostgreSQL: a session-level advisory lock, polled with pg_try_advisory_lock() outside any
transaction (a session blocked inside pg_advisory_lock() can deadlock against CREATE INDEX
CONCURRENTLY run by the holder). SQLite: an exclusive flock on a file beside the database.
Both belong to something the server or the kernel cleans up when the holder dies, so a crashed
migrator never leaves a lock behind.

One waiting policy (`Waiting`, on alembic_prestart.waiting: a deadline, a log line naming the
holder every 5 s) drives every form: the launcher's own session (asyncpg), and the helpers
env.py uses (alembic_prestart.lock.env). Standard library only.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from alembic_prestart.waiting import Patience

POLL_SECONDS = 0.1
# How often the holder proves it still holds the lock while a migration runs: each check is
# also traffic that keeps a proxy or a NAT from dropping the quiet session.
CHECK_EVERY_SECONDS = 1.0

logger = logging.getLogger("alembic_prestart.lock")


class LockTimeout(Exception):
    """The lock was not ours within the deadline."""


class LockLost(Exception):
    """The session that held the lock no longer does: the migration must stop."""


# What a transaction-pooling proxy does to a session lock, said where it is detected.
POOLER_HINT = (
    "a transaction-pooling proxy (PgBouncer pool_mode=transaction, a managed pooler's "
    "transaction mode) hands each statement to another server session, and session advisory "
    "locks do not survive that: connect the migration directly or through a session-mode pool"
)


def advisory_lock_key(database: str, schema: str) -> int:
    """A stable, non-negative 63-bit key per database and schema."""
    digest = hashlib.blake2b(f"migrations\0{database}\0{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def try_lock_sql(key: int) -> str:
    return f"SELECT pg_try_advisory_lock({int(key)})"


def unlock_sql(key: int) -> str:
    return f"SELECT pg_advisory_unlock({int(key)})"


def _key_condition(key: int) -> str:
    return (
        "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        f"AND l.classid = {int(key) >> 32} AND l.objid = {int(key) & 0xFFFF_FFFF}"
    )


def held_by_sql(key: int, pid: int | None = None) -> str:
    """True when the session with server pid `pid` (default: this one) holds the lock."""
    who = "pg_backend_pid()" if pid is None else str(int(pid))
    return (
        f"SELECT EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.pid = {who} AND {_key_condition(key)})"
    )


def keep_alive_sql(server_version_num: int) -> list[str]:
    """Settings that keep the server from closing the lock's session while it waits quietly
    for a migration (advisory locks go with the session). Said to the server so the session's
    own settings never end it; proxies and NATs are kept busy by the periodic checks."""
    statements = ["SELECT set_config('idle_in_transaction_session_timeout', '0', false)"]
    if server_version_num >= 140000:  # idle_session_timeout exists from PostgreSQL 14
        statements.append("SELECT set_config('idle_session_timeout', '0', false)")
    return statements


def holder_sql(key: int) -> str:
    """Who holds the lock: pid, application_name, state, what it runs (one row, or none)."""
    return (
        "SELECT a.pid, a.application_name, a.state, "
        "left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80) "
        "FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
        f"WHERE {_key_condition(key)}"
    )


def holder_text(row: tuple[Any, ...] | None) -> str:
    if not row:
        return "a session that just let it go"
    pid, application_name, state = row[0], row[1], row[2]
    text = f"pid {pid} ({application_name or 'no application_name'!r}"
    # A launcher holding the lock for its alembic child is idle on its own connection: the
    # work happens in the child's session, named after it.
    if state and state != "idle":
        text += f", {state}"
    return text + ")"


class Waiting:
    """How long to wait, when to say so, when to give up: every lock form shares this, on the
    launcher's one waiting policy (alembic_prestart.waiting)."""

    def __init__(self, what: str, timeout: float, log: logging.Logger = logger) -> None:
        self.what = what
        self.timeout = timeout
        self._patience = Patience(timeout, first=POLL_SECONDS)
        self._log = log

    def pause(self, holder: Callable[[], str]) -> float:
        """After a failed try: log now and then, raise LockTimeout past the deadline, and
        return how long to sleep before the next try."""
        if self._patience.expired():
            raise LockTimeout(
                f"waited {self.timeout:g}s for the migration lock on {self.what}, "
                f"held by {holder()}"
            )
        if self._patience.progress_due():
            self._log.info(
                "waiting for the migration lock on %s, held by %s, for %.0fs",
                self.what,
                holder(),
                self._patience.elapsed(),
            )
        return self._patience.next_pause()


def acquire_postgres(
    query: Callable[[str], list[tuple[Any, ...]]],
    key: int,
    waiting: Waiting,
    should_stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Poll until the lock is ours (True) or should_stop() (False); LockTimeout at the deadline.
    `query` runs one SQL statement on the session that is to hold the lock."""
    while not query(try_lock_sql(key))[0][0]:
        if should_stop():
            return False
        pause = waiting.pause(lambda: holder_text(_first(query(holder_sql(key)))))
        time.sleep(pause)
    return True


def _first(rows: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    return rows[0] if rows else None
