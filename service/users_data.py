"""Data functions for users: SQLAlchemy Core on the engine, one transaction per call."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.tables import users

_COLUMNS = (users.c.id, users.c.name, users.c.email, users.c.created_at)


class EmailTaken(Exception):
    """The email belongs to another user (the unique constraint said so)."""


def _row_to_dict(row: Any) -> dict[str, Any]:
    created_at: datetime = row.created_at
    # SQLite's CURRENT_TIMESTAMP is UTC without an offset; say so explicitly.
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return {"id": row.id, "name": row.name, "email": row.email, "created_at": created_at}


async def create_user(engine: AsyncEngine, *, name: str, email: str) -> dict[str, Any]:
    statement = insert(users).values(name=name, email=email).returning(*_COLUMNS)
    try:
        async with engine.begin() as connection:
            row = (await connection.execute(statement)).one()
    except IntegrityError as error:
        raise EmailTaken(email) from error
    return _row_to_dict(row)


async def get_user(engine: AsyncEngine, *, user_id: int) -> dict[str, Any] | None:
    async with engine.connect() as connection:
        row = (await connection.execute(select(*_COLUMNS).where(users.c.id == user_id))).first()
    return _row_to_dict(row) if row else None


async def list_users(engine: AsyncEngine, *, limit: int, after: int) -> list[dict[str, Any]]:
    statement = select(*_COLUMNS).where(users.c.id > after).order_by(users.c.id).limit(limit)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [_row_to_dict(row) for row in rows]


async def update_user(
    engine: AsyncEngine, *, user_id: int, changes: dict[str, Any]
) -> dict[str, Any] | None:
    if not changes:
        return await get_user(engine, user_id=user_id)
    statement = update(users).where(users.c.id == user_id).values(**changes).returning(*_COLUMNS)
    try:
        async with engine.begin() as connection:
            row = (await connection.execute(statement)).first()
    except IntegrityError as error:
        raise EmailTaken(changes.get("email", "")) from error
    return _row_to_dict(row) if row else None


async def delete_user(engine: AsyncEngine, *, user_id: int) -> bool:
    async with engine.begin() as connection:
        result = await connection.execute(delete(users).where(users.c.id == user_id))
    return result.rowcount > 0
