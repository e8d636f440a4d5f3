"""Who blocks the migration: remembered so a lock timeout can name the session behind it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger("migrations.lock")

POLL_INTERVAL_SECONDS = 0.25
LOG_EVERY_SECONDS = 5.0

_BLOCKERS_QUERY = text(
    """
    SELECT pid, application_name, state, left(regexp_replace(query, '\\s+', ' ', 'g'), 120)
    FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(:pid))
    """
)


@dataclass(frozen=True)
class Session:
    """Another PostgreSQL session, as an operator would look it up in pg_stat_activity."""

    pid: int
    application_name: str
    state: str | None
    query: str | None = None

    def describe(self) -> str:
        text_ = f"pid {self.pid} (application_name {self.application_name or '(none)'!r}"
        if self.state:
            text_ += f", {self.state}"
        if self.query:
            text_ += f", last query {self.query!r}"
        return text_ + ")"


class BlockerWatch:
    """Remembers who blocks a backend, so a lock timeout can name the session behind it."""

    def __init__(self, connection: AsyncConnection, backend_pid: int) -> None:
        self._connection = connection
        self._pid = backend_pid
        self.last_seen: list[Session] = []
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        while not self._stopped.is_set():
            rows = (await self._connection.execute(_BLOCKERS_QUERY, {"pid": self._pid})).all()
            if rows:
                self.last_seen = [Session(*row) for row in rows]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), POLL_INTERVAL_SECONDS)

    def stop(self) -> None:
        """Stop after the query under way, if any: a query cancelled half-way would leave its
        connection (the lock's) broken for whatever comes after."""
        self._stopped.set()
