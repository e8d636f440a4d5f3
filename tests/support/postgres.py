"""Throwaway PostgreSQL databases for tests: created on demand, dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from tests.support.urls import DatabaseURL, parse_database_url, with_database

T = TypeVar("T")

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> DatabaseURL:
    return parse_database_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_ADMIN_URL))


async def _execute(url: DatabaseURL, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.asyncpg_dsn(), timeout=5)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def execute(url: DatabaseURL, *statements: str) -> None:
    asyncio.run(_execute(url, *statements))


async def _fetch(url: DatabaseURL, query: str, *args: object) -> list:
    import asyncpg

    connection = await asyncpg.connect(url.asyncpg_dsn(), timeout=5)
    try:
        return [tuple(row) for row in await connection.fetch(query, *args)]
    finally:
        await connection.close()


def fetch(url: DatabaseURL, query: str, *args: object) -> list:
    return asyncio.run(_fetch(url, query, *args))


def run_on(url: DatabaseURL, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(connection)` on a fresh asyncpg connection to `url`."""

    async def run() -> T:
        import asyncpg

        connection = await asyncpg.connect(url.asyncpg_dsn(), timeout=5)
        try:
            return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(run())


def require_postgres() -> DatabaseURL:
    """The admin URL, or a skip (a failure under CI=true) when PostgreSQL is unreachable."""
    url = admin_url()
    try:
        execute(url, "SELECT 1")
    except Exception as error:
        reason = f"PostgreSQL unreachable at {url.redacted()}: {type(error).__name__}: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    return url


def create_database(
    admin: DatabaseURL, *, name: str | None = None, template: str | None = None
) -> DatabaseURL:
    """A new database (a copy of `template` if given: far faster than migrating again)."""
    name = name or f"test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    execute(admin, f'CREATE DATABASE "{name}"{clause}')
    return with_database(admin, name)


def drop_database(admin: DatabaseURL, url: DatabaseURL) -> None:
    # FORCE: a server that did not stop cleanly must not leave the database behind.
    execute(admin, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
