"""env.py's watcher of who blocks a migration (migrations/blockers.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from migrations.blockers import BlockerWatch


class SlowConnection:
    """Answers each query after a pause, and remembers how each one ended."""

    def __init__(self) -> None:
        self.finished = 0
        self.cancelled = 0

    async def execute(self, *_args: Any) -> Any:
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return self

    def all(self) -> list[Any]:
        return []


def test_stopping_lets_the_query_under_way_finish() -> None:
    """stop() ends the watch after its query, never half-way through one: a cancelled query
    would leave the lock's connection broken for the commit that follows."""

    async def scenario() -> SlowConnection:
        connection = SlowConnection()
        watch = BlockerWatch(connection, 1234)  # type: ignore[arg-type]
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.05)  # the first query is under way
        watch.stop()
        await asyncio.wait_for(task, 2)
        return connection

    connection = asyncio.run(scenario())
    assert (connection.finished, connection.cancelled) == (1, 0)
