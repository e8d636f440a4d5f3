"""Every answer of the hot routes goes through the FastAPI app: its middleware, its dependency
overrides and its response model apply to every status, success and failure alike.

In process, through httpx's ASGITransport (the `httpx2` package), with the store replaced by
`dependency_overrides`: no database is needed to decide which status comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from service.dependencies import get_store
from service.failures import SchemaNotMigrated, StorageFull, Unavailable
from service.main import create_app
from service.settings import get_settings
from service.store import EmailTaken
from tests.support.urls import DatabaseURL

SECRET = "argon2id$not-for-clients"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class ScriptedStore:
    """A store that answers every call with one scripted outcome: a row or an exception."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls: list[str] = []

    async def _answer(self, operation: str, **fields: Any) -> Any:
        self.calls.append(operation)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        if self.outcome is None:
            return None
        return {**fields, "created_at": CREATED, "password_hash": SECRET, **self.outcome}

    async def get(self, user_id: int) -> dict | None:
        return await self._answer("get", id=user_id, name="Ada", email="ada@example.com")

    async def create(self, values: dict) -> dict:
        return await self._answer("create", id=7, **values)


GET_CASES = [
    ("/users/7", {}, 200),
    ("/users/7", None, 404),
    ("/users/not-a-number", {}, 422),
    ("/users/7", Unavailable("ConnectionRefusedError"), 503),
    ("/users/7", SchemaNotMigrated("no such table: users"), 503),
    ("/users/7", StorageFull("SQLITE_FULL"), 507),
]
POST_CASES = [
    ({"name": "Ada", "email": "ada@example.com"}, {}, 201),
    ({"name": "Ada", "email": "ada@example.com"}, EmailTaken(), 409),
    ({"name": "Ada", "email": "not an email"}, {}, 422),
    ({"name": "Ada", "email": "ada@example.com"}, Unavailable("TimeoutError"), 503),
    ({"name": "Ada", "email": "ada@example.com"}, StorageFull("53100 disk full"), 507),
]


def _instrumented(store: ScriptedStore) -> tuple[FastAPI, list[tuple[str, str, int]], list[int]]:
    """The real app with a recording middleware and the store overridden (counting calls)."""
    app = create_app()
    seen: list[tuple[str, str, int]] = []
    overrides: list[int] = []

    @app.middleware("http")
    async def record(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        seen.append((request.method, request.url.path, response.status_code))
        return response

    async def scripted_store() -> ScriptedStore:
        overrides.append(1)
        return store

    app.dependency_overrides[get_store] = scripted_store
    return app, seen, overrides


def _send(app: FastAPI, method: str, path: str, body: dict | None = None) -> httpx2.Response:
    async def go() -> httpx2.Response:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://service") as client:
            return await client.request(method, path, json=body)

    return asyncio.run(go())


@pytest.mark.parametrize(("path", "outcome", "status"), GET_CASES)
def test_get_user_answers_through_the_app(path: str, outcome: Any, status: int) -> None:
    """GET /users/{id}: middleware sees it, the override serves it, the model filters it."""
    store = ScriptedStore(outcome)
    app, seen, overrides = _instrumented(store)
    response = _send(app, "GET", path)
    assert response.status_code == status, response.text
    assert seen == [("GET", path, status)]
    assert overrides == [1]
    assert SECRET not in response.text
    if status == 200:
        assert response.json() == {
            "id": 7,
            "name": "Ada",
            "email": "ada@example.com",
            "created_at": "2026-01-02T03:04:05Z",
        }
    assert store.calls == ([] if status == 422 else ["get"])


@pytest.mark.parametrize(("body", "outcome", "status"), POST_CASES)
def test_create_user_answers_through_the_app(body: dict, outcome: Any, status: int) -> None:
    """POST /users: middleware sees it, the override serves it, the model filters it."""
    store = ScriptedStore(outcome)
    app, seen, overrides = _instrumented(store)
    response = _send(app, "POST", "/users", body)
    assert response.status_code == status, response.text
    assert seen == [("POST", "/users", status)]
    assert overrides == [1]
    assert SECRET not in response.text
    assert "password_hash" not in response.text
    if status == 201:
        assert set(response.json()) == {"id", "name", "email", "created_at"}
    assert store.calls == ([] if status == 422 else ["create"])


def test_database_failures_are_logged_once_with_their_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each 503 and 507 leaves one log line naming its cause; the client gets no detail."""
    for outcome, status, cause in (
        (Unavailable("ConnectionRefusedError: [Errno 111]"), 503, "ConnectionRefusedError"),
        (SchemaNotMigrated("42P01 relation users does not exist"), 503, "42P01"),
        (StorageFull("SQLITE_FULL: database or disk is full"), 507, "SQLITE_FULL"),
    ):
        caplog.clear()
        app, _, _ = _instrumented(ScriptedStore(outcome))
        response = _send(app, "GET", "/users/7")
        assert response.status_code == status
        records = [r for r in caplog.records if r.name.startswith("service")]
        assert len(records) == 1, [r.getMessage() for r in records]
        assert cause in records[0].getMessage()
        assert cause not in response.text
        assert records[0].exc_info is None  # one line, no traceback


def test_storage_full_is_named_not_retried() -> None:
    """A full disk is 507 'database storage full', without Retry-After."""
    app, _, _ = _instrumented(ScriptedStore(StorageFull("53100")))
    response = _send(app, "POST", "/users", {"name": "Ada", "email": "ada@example.com"})
    assert response.json() == {"detail": "database storage full"}
    assert "retry-after" not in response.headers


@pytest.fixture
def real_app(migrated_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """The app on a migrated database, not yet started."""
    monkeypatch.setenv("DATABASE_URL", migrated_url.url)
    get_settings.cache_clear()
    try:
        yield create_app()
    finally:
        get_settings.cache_clear()


def test_middleware_sees_every_status_on_a_real_database(real_app: FastAPI) -> None:
    """On SQLite and PostgreSQL, a middleware sees 201, 409, 422, 200 and 404 alike."""
    seen: list[int] = []

    @real_app.middleware("http")
    async def record(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        seen.append(response.status_code)
        return response

    with TestClient(real_app) as client:
        user = client.post("/users", json={"name": "Ada", "email": "ada@example.com"}).json()
        client.post("/users", json={"name": "Ada", "email": "ada@example.com"})
        client.post("/users", json={"name": "", "email": "ada@example.com"})
        client.get(f"/users/{user['id']}")
        client.get("/users/999999")
    assert seen == [201, 409, 422, 200, 404]
