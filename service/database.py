"""The async engine: created in the app's lifespan, disposed at shutdown."""

from __future__ import annotations

import os

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.settings import Settings

APPLICATION_NAME = "service"


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.url
    if url.is_sqlite:
        return _create_sqlite_engine(settings)
    return create_async_engine(
        url.url,
        pool_size=settings.database_pool_size,
        max_overflow=0,
        pool_timeout=settings.database_timeout,
        pool_pre_ping=False,
        # A dead server makes every pooled connection fail once; recycle them instead of
        # serving stale sockets forever.
        pool_recycle=1800,
        connect_args={
            "timeout": settings.database_timeout,
            "command_timeout": settings.database_timeout * 6,
            "server_settings": {
                "search_path": settings.database_schema,
                "application_name": f"{APPLICATION_NAME} pid={os.getpid()}",
            },
        },
    )


def _create_sqlite_engine(settings: Settings) -> AsyncEngine:
    settings.url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        settings.url.url,
        connect_args={"timeout": settings.database_timeout},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # WAL lets readers proceed while the launcher's migration or another worker writes.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.database_timeout * 1000)}")
        cursor.close()

    return engine
