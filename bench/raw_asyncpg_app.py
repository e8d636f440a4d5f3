"""The yardstick for bench/api.py: the same two routes as the service on plain ASGI and a raw
asyncpg pool, no framework, no ORM, no validation library.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/DB \\
        .venv/bin/python -m uvicorn bench.raw_asyncpg_app:app --app-dir /path/to/project

Routes, as the service answers them (the table is DATABASE_SCHEMA.users, default test_app):
  GET  /healthz           200
  GET  /users/{id}        200 {id, name, email, created_at}; 404; 422 for ids outside 1..2^63-1
  POST /users {name, email}  201 {id, name, email, created_at}; 409 taken email; 422 invalid

The pool holds DATABASE_POOL_SIZE connections, default 20: the service's default
(service/settings.py database_pool_size), so neither side queues on a smaller pool.
"""

from __future__ import annotations

import json
import os
from typing import Any

import asyncpg

MAX_ID = 2**63 - 1
NAME_MAX_LENGTH = 100  # service/tables.py
EMAIL_MAX_LENGTH = 320
MAX_BODY_BYTES = 64 * 1024  # the service's max_body_bytes default
DEFAULT_POOL_SIZE = 20  # service/settings.py database_pool_size

GET_USER = "SELECT id, name, email, created_at FROM users WHERE id = $1"
INSERT_USER = (
    "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id, name, email, created_at"
)


def _dsn() -> str:
    # The service accepts postgres://, postgresql:// and postgresql+asyncpg://; so do we.
    url = os.environ.get("DATABASE_URL", "")
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme.startswith("postgres"):
        raise RuntimeError("DATABASE_URL must be a postgres:// or postgresql:// URL")
    return f"postgresql://{rest}"


def _user(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "created_at": row["created_at"].isoformat(),
    }


def _valid_create(body: bytes) -> tuple[str, str] | None:
    """(name, email) when the body is what the service would accept, else None. A cheap
    stand-in for the service's pydantic model (strip, lengths, one @, no extra keys)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {"name", "email"}:
        return None
    name, email = data["name"], data["email"]
    if not isinstance(name, str) or not isinstance(email, str):
        return None
    name = name.strip()
    local, at, domain = email.partition("@")
    if not 1 <= len(name) <= NAME_MAX_LENGTH or len(email) > EMAIL_MAX_LENGTH:
        return None
    if not (local and at and "." in domain and "@" not in domain):
        return None
    return name, email


class RawUsersApp:
    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            status, payload = await self._route(scope, receive)
            await _send_json(send, status, payload)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.pool = await self._create_pool()
                except Exception as error:  # uvicorn prints it and exits
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _create_pool(self) -> asyncpg.Pool:
        size = int(os.environ.get("DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE))
        schema = os.environ.get("DATABASE_SCHEMA") or "test_app"
        return await asyncpg.create_pool(
            _dsn(),
            min_size=size,
            max_size=size,
            # As the service does: unqualified table names resolve in the configured schema.
            server_settings={"search_path": schema, "application_name": "raw asyncpg bench"},
        )

    async def _route(self, scope: dict, receive: Any) -> tuple[int, dict[str, Any]]:
        method, path = scope["method"], scope["path"]
        if path == "/healthz" and method == "GET":
            return 200, {"status": "ok"}
        if path == "/users" and method == "POST":
            body = await _read_body(receive)
            if body is None:
                return 413, {"detail": "request body too large"}
            return await self._create_user(body)
        if path.startswith("/users/") and method == "GET":
            return await self._get_user(path.removeprefix("/users/"))
        return 404, {"detail": "Not Found"}

    async def _get_user(self, raw_id: str) -> tuple[int, dict[str, Any]]:
        if not raw_id.isdigit() or not 1 <= int(raw_id) <= MAX_ID:
            return 422, {"detail": "invalid user id"}
        assert self.pool is not None
        row = await self.pool.fetchrow(GET_USER, int(raw_id))
        return (200, _user(row)) if row else (404, {"detail": "user not found"})

    async def _create_user(self, body: bytes) -> tuple[int, dict[str, Any]]:
        fields = _valid_create(body)
        if fields is None:
            return 422, {"detail": "invalid user"}
        assert self.pool is not None
        try:
            row = await self.pool.fetchrow(INSERT_USER, *fields)
        except asyncpg.UniqueViolationError:
            return 409, {"detail": "email already registered"}
        return 201, _user(row)


async def _read_body(receive: Any) -> bytes | None:
    """The whole request body, or None once it passes MAX_BODY_BYTES."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()  # compact, as Starlette does
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = RawUsersApp()
