"""The yardstick for bench/api.py: FastAPI's floor on the same table. The thinnest FastAPI app
whose two handlers call an asyncpg pool directly: no middleware, no dependency, no response
model (FastAPI encodes the returned dict with jsonable_encoder), a plain pydantic body.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/DB \\
        .venv/bin/python -m uvicorn bench.raw_asyncpg_app:app --app-dir /path/to/project

The pool is configured as the service's (service/store.py): DATABASE_POOL_SIZE connections
(default 20), search_path set to DATABASE_SCHEMA (default test_app), no reset query on release,
so the comparison measures what the service adds on top of FastAPI, not pool settings.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DEFAULT_POOL_SIZE = 20  # service/settings.py database_pool_size
GET_USER = "SELECT id, name, email, created_at FROM users WHERE id = $1"
INSERT_USER = (
    "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id, name, email, created_at"
)
pool: asyncpg.Pool


def _dsn() -> str:
    # The service accepts postgres://, postgresql:// and postgresql+asyncpg://; so do we.
    scheme, separator, rest = os.environ.get("DATABASE_URL", "").partition("://")
    if not separator or not scheme.startswith("postgres"):
        raise RuntimeError("DATABASE_URL must be a postgres:// or postgresql:// URL")
    return f"postgresql://{rest}"


async def _no_reset(_connection: Any) -> None:
    return None


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    global pool
    size = int(os.environ.get("DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE))
    pool = await asyncpg.create_pool(
        _dsn(),
        min_size=size,
        max_size=size,
        server_settings={"search_path": os.environ.get("DATABASE_SCHEMA") or "test_app"},
        reset=_no_reset,
    )
    yield
    await pool.close()


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
    row = await pool.fetchrow(GET_USER, user_id)
    if row is None:
        raise HTTPException(404, "user not found")
    return dict(row)


@app.post("/users", status_code=201, response_model=None)
async def create_user(body: NewUser) -> dict[str, Any]:
    try:
        row = await pool.fetchrow(INSERT_USER, body.name, body.email)
    except asyncpg.UniqueViolationError:
        raise HTTPException(409, "email already registered") from None
    return dict(row)
