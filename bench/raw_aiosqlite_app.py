"""The yardstick for bench/sqlite_workers.py: FastAPI's floor on SQLite. The thinnest FastAPI
app whose two handlers call one aiosqlite connection per worker directly: no middleware, no
dependency, no response model, a plain pydantic body.

    DATABASE_URL=sqlite:////path/to/app.db \\
        .venv/bin/python -m uvicorn bench.raw_aiosqlite_app:app --app-dir /path/to/project

The file is the service's (migrated by the launcher) and its durability the same: WAL,
synchronous FULL (a commit is on disk when the answer leaves), autocommit. A writer that finds
the file locked waits in SQLite's own busy handler, up to 5 s, as an app without a store of its
own does.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

BUSY_TIMEOUT_SECONDS = 5.0  # service/settings.py database_timeout
GET_USER = "SELECT id, name, email, created_at FROM users WHERE id = ?"
INSERT_USER = "INSERT INTO users (name, email) VALUES (?, ?) RETURNING id, name, email, created_at"
connection: aiosqlite.Connection


def _path() -> str:
    scheme, separator, path = os.environ.get("DATABASE_URL", "").partition(":///")
    if not separator or scheme != "sqlite":
        raise RuntimeError("DATABASE_URL must be a sqlite:///path URL")
    return path


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    global connection
    connection = await aiosqlite.connect(
        _path(), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
    )
    connection.row_factory = sqlite3.Row
    await connection.execute_fetchall("PRAGMA journal_mode=WAL", ())
    await connection.execute_fetchall("PRAGMA synchronous=FULL", ())
    yield
    await connection.close()


app = FastAPI(lifespan=lifespan)


class NewUser(BaseModel):
    name: str
    email: str


@app.get("/healthz", response_model=None)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


# response_model=None: the annotation documents the function, FastAPI validates nothing.
@app.get("/users/{user_id}", response_model=None)
async def get_user(user_id: int) -> dict[str, Any]:
    rows = await connection.execute_fetchall(GET_USER, (user_id,))
    if not rows:
        raise HTTPException(404, "user not found")
    return dict(next(iter(rows)))


@app.post("/users", status_code=201, response_model=None)
async def create_user(body: NewUser) -> dict[str, Any]:
    try:
        rows = await connection.execute_fetchall(INSERT_USER, (body.name, body.email))
    except sqlite3.IntegrityError:
        raise HTTPException(409, "email already registered") from None
    return dict(next(iter(rows)))
