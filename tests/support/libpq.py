"""libpq as the oracle for DATABASE_URL: where psql lands, and where each of the project's
connection paths lands, for one URL and one environment.

Each answer is what the server says of the session (database, user, port, TLS), never what a
client believes it asked for. The Alembic child's engines (async and sync) and the service's
pool are reached through `ProjectPaths`: one process that imports them once, then forks a child
per case that takes the case's environment (DATABASE_URL included) before anything reads it,
connects each path and runs ORACLE_QUERY: a process of its own per case without paying a second
for the imports each time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tests.support.urls import PROJECT_ROOT

ORACLE_QUERY = (
    "SELECT current_database(), current_user, inet_server_port(), "
    "coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)"
)
# The paths `python -m tests.support.libpq` reports, in that order.
PATHS = ("async_engine", "sync_engine", "service_pool")

# The launcher's line naming the session it holds (db/session.py connected_to()).
_CONNECTED = re.compile(
    r"connected to postgresql://(?P<user>.*?)@(?P<where>\[local\]|\[[^\]]*\]:\d+|[^@/:]+:\d+)"
    r"/(?P<database>.*) \((?P<tls>TLS|no TLS|Unix socket)(?:, the server's own address)?\), "
    r"schema "
)


@dataclass(frozen=True)
class Reached:
    """Where a session is, as the server reports it (port None: a Unix socket)."""

    database: str
    user: str
    port: int | None
    tls: bool


@dataclass(frozen=True)
class Outcome:
    """What one client made of the URL: where it landed, or why it did not connect."""

    reached: Reached | None = None
    error: str | None = None

    def __str__(self) -> str:
        return str(self.reached) if self.reached else f"failed: {self.error}"


def psql(url: str, env: dict[str, str], timeout: float = 30) -> Outcome:
    """libpq's answer: psql with this URL and environment (never a prompt, no psqlrc)."""
    done = subprocess.run(
        ["psql", url, "-X", "-w", "-At", "-c", ORACLE_QUERY],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        return Outcome(error=done.stderr.strip() or f"psql exited {done.returncode}")
    database, user, port, tls = done.stdout.strip().split("|")
    return Outcome(Reached(database, user, int(port) if port else None, tls == "t"))


def launcher_reached(output: str) -> Reached | None:
    """Where the launcher's own session was, from its `connected to ...` line."""
    found = _CONNECTED.search(output)
    if found is None:
        return None
    where = found["where"]
    port = None if where == "[local]" else int(where.rpartition(":")[2])
    return Reached(found["database"], found["user"], port, found["tls"] == "TLS")


class ProjectPaths:
    """The fork server: `reach(env)` answers for each path of PATHS, one case at a time."""

    def __init__(self, env: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.libpq"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def reach(self, env: dict[str, str]) -> dict[str, Outcome]:
        """Each path's outcome in a child with exactly `env` as its environment."""
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(json.dumps(env) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise AssertionError(f"the fork server exited {self._process.poll()}")
        return {
            path: Outcome(Reached(*answer["reached"])) if "reached" in answer else Outcome(**answer)
            for path, answer in json.loads(line).items()
        }

    def close(self) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()  # the server's loop ends, and the server with it
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._process.stdout.close()


async def _async_engine() -> Any:
    from alembic_prestart import create_async_engine

    engine = create_async_engine()
    try:
        async with engine.connect() as connection:
            return (await connection.exec_driver_sql(ORACLE_QUERY)).one()
    finally:
        await engine.dispose()


async def _sync_engine() -> Any:
    from alembic_prestart import create_engine

    engine = create_engine()
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql(ORACLE_QUERY).one()
    finally:
        engine.dispose()


async def _service_pool() -> Any:
    from service.settings import Settings
    from service.store import PostgresStore

    # The service's own store, its pool built from its settings as in the app's lifespan.
    store = PostgresStore(Settings())
    try:
        pool = await store._get_pool()
        return await pool.fetchrow(ORACLE_QUERY)
    finally:
        await store.close()


async def _answer(connect: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    try:
        row = await asyncio.wait_for(connect(), 30)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {str(error).strip()[:300]}"}
    return {"reached": list(row)}


async def _main() -> dict[str, Any]:
    connects = {
        "async_engine": _async_engine,
        "sync_engine": _sync_engine,
        "service_pool": _service_pool,
    }
    return {path: await _answer(connects[path]) for path in PATHS}


def _serve() -> None:
    """Read one environment per line; answer each from a child forked with it."""
    import alembic_prestart.db.engine  # noqa: F401 - what each child would import again
    import asyncpg  # noqa: F401
    import psycopg  # noqa: F401
    import sqlalchemy.ext.asyncio  # noqa: F401

    import service.store  # noqa: F401

    for line in sys.stdin:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the case's environment, then the paths
            os.close(reader)
            try:
                os.environ.clear()
                os.environ.update(json.loads(line))
                signal.alarm(120)
                answer = json.dumps(asyncio.run(_main()))
                with os.fdopen(writer, "w") as out:
                    out.write(answer)
            finally:
                os._exit(0)
        os.close(writer)
        with os.fdopen(reader) as pipe:
            answer = pipe.read()
        _pid, status = os.waitpid(pid, 0)
        died = {"error": f"the child died (wait status {status})"}
        print(answer or json.dumps(dict.fromkeys(PATHS, died)), flush=True)


if __name__ == "__main__":
    _serve()
