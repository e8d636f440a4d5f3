"""SQLite writes committed in groups (service/store.py, SqliteStore): the writes that gather
while one commits share the next transaction and its fsync; each stays atomic on its own, and
no write is answered as done unless it is in the file."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from service.failures import StorageFull
from service.settings import Settings
from service.store import EmailTaken, SqliteStore
from tests.support.urls import DatabaseURL

pytestmark = pytest.mark.parametrize("migrated_url", ["sqlite"], indirect=True)


async def _traced_store(url: DatabaseURL) -> tuple[SqliteStore, list[str]]:
    store = await SqliteStore.open(Settings(database_url=url.url))
    statements: list[str] = []
    await store._writer.set_trace_callback(statements.append)
    return store, statements


def _create(store: SqliteStore, email: str, name: str = "Ada") -> Any:
    return store.create({"name": name, "email": email})


def _stored_emails(url: DatabaseURL) -> set[str]:
    with sqlite3.connect(url.sqlite_path) as connection:
        return {email for (email,) in connection.execute("SELECT email FROM users")}


def test_concurrent_writes_share_commits_and_every_one_is_stored(
    migrated_url: DatabaseURL,
) -> None:
    """40 creates at once: every one answered with its own id and stored, in far fewer
    transactions than writes."""

    async def scenario() -> tuple[list[Any], list[str]]:
        store, statements = await _traced_store(migrated_url)
        try:
            users = await asyncio.gather(*(_create(store, f"u{n}@a.io") for n in range(40)))
        finally:
            await store.close()
        return users, statements

    users, statements = asyncio.run(scenario())
    assert len({user["id"] for user in users}) == 40
    assert _stored_emails(migrated_url) == {f"u{n}@a.io" for n in range(40)}
    commits = statements.count("COMMIT")
    assert commits == statements.count("BEGIN IMMEDIATE")
    assert 1 <= commits <= 5, statements  # the first write alone, then the rest in groups


def test_a_taken_email_fails_alone_and_its_group_commits(migrated_url: DatabaseURL) -> None:
    """In one group, the write with a taken email is 409 and undone alone; the others are
    stored."""

    async def scenario() -> list[Any]:
        store, statements = await _traced_store(migrated_url)
        try:
            await _create(store, "taken@a.io")
            statements.clear()
            return await asyncio.gather(
                _create(store, "first@a.io"),  # alone: commits while the others gather
                *(_create(store, email) for email in ("b@a.io", "taken@a.io", "c@a.io")),
                return_exceptions=True,
            )
        finally:
            await store.close()

    first, b, taken, c = asyncio.run(scenario())
    assert isinstance(taken, EmailTaken)
    assert [user["email"] for user in (first, b, c)] == ["first@a.io", "b@a.io", "c@a.io"]
    assert _stored_emails(migrated_url) == {"taken@a.io", "first@a.io", "b@a.io", "c@a.io"}


def test_a_full_disk_answers_each_write_of_the_group_and_stores_none_of_those(
    migrated_url: DatabaseURL,
) -> None:
    """The file may not grow: every write answered as created is in the file, every write
    answered 'storage full' is not, and at least one is refused."""

    async def scenario() -> list[Any]:
        store, _ = await _traced_store(migrated_url)
        try:
            [(pages,)] = await store._writer.execute_fetchall("PRAGMA page_count", ())
            await store._writer.execute_fetchall(f"PRAGMA max_page_count = {pages + 2}", ())
            return await asyncio.gather(
                *(_create(store, f"u{n}@a.io", name="x" * 100) for n in range(200)),
                return_exceptions=True,
            )
        finally:
            await store.close()

    outcomes = asyncio.run(scenario())
    assert {type(outcome) for outcome in outcomes} <= {dict, StorageFull}, outcomes
    created = {outcome["email"] for outcome in outcomes if isinstance(outcome, dict)}
    assert any(isinstance(outcome, StorageFull) for outcome in outcomes)
    assert _stored_emails(migrated_url) == created


def test_workers_opening_a_fresh_file_together_all_open(migrated_url: DatabaseURL) -> None:
    """Eight stores opening one file at once (workers starting together; each switches the
    file to WAL): every one opens, none finds the file locked."""

    async def scenario() -> None:
        stores = await asyncio.gather(
            *(SqliteStore.open(Settings(database_url=migrated_url.url)) for _ in range(8))
        )
        await asyncio.gather(*(store.close() for store in stores))

    for _ in range(20):
        with sqlite3.connect(migrated_url.sqlite_path) as connection:  # back to a rollback journal
            connection.execute("PRAGMA journal_mode=DELETE")
        asyncio.run(scenario())
