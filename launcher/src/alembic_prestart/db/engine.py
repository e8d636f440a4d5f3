"""The engines env.py migrates with, from DATABASE_URL read the launcher's way.

One interpretation of the URL reaches the Alembic child: a PostgreSQL URL goes, as given, to
the driver that implements libpq's rules (asyncpg for the async engine; psycopg, which is libpq
itself, for the sync one), never rewritten into SQLAlchemy's own URL: SQLAlchemy would hand
`?sslmode=` to asyncpg as a keyword it rejects, and has no `postgres://` dialect. SQLAlchemy
only wraps the connection the driver makes (`creator` / `async_creator`), with NullPool: one
migration run, then disposed.

Each connection has search_path set to the migration schema (DATABASE_SCHEMA) and the
application name the launcher chose, so unqualified DDL and the version table land where the
launcher reads them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic_prestart.config import MigrationEnvironment
from alembic_prestart.db.scram import bound_password_hashing
from alembic_prestart.db.url import DatabaseURL, parse_database_url, validate_schema

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine


def migration_url(
    *,
    root: Path | None = None,
    default: str | None = None,
    settings: MigrationEnvironment | None = None,
) -> DatabaseURL:
    """DATABASE_URL as the launcher reads it; `root` (default: the folder of the Alembic
    configuration) anchors a relative SQLite path; `default` applies when it is unset.
    `settings`: the child's settings when the caller has read them already."""
    settings = settings or MigrationEnvironment.from_environment()
    return parse_database_url(settings.database_url, root=root or _alembic_root(), default=default)


def offline_url(*, root: Path | None = None, default: str | None = None) -> str:
    """The URL for Alembic's offline mode (`--sql`): the dialect only, no host, no secret."""
    url = migration_url(root=root, default=default)
    return "sqlite://" if url.is_sqlite else "postgresql://"


def create_engine(
    *, root: Path | None = None, default: str | None = None, schema: str | None = None
) -> Engine:
    """A sync engine (Alembic's `generic` template). PostgreSQL through psycopg, the adopter's
    own dependency (`pip install 'psycopg[binary]'`), handed the URL as libpq reads it.
    `schema` (default: DATABASE_SCHEMA) becomes each connection's search_path."""
    from sqlalchemy import create_engine as sqlalchemy_engine
    from sqlalchemy import pool

    settings = MigrationEnvironment.from_environment()
    url = migration_url(root=root, default=default, settings=settings)
    if url.is_sqlite:
        url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return sqlalchemy_engine(f"sqlite:///{url.sqlite_path}", poolclass=pool.NullPool)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the adopter's dependency
        raise ImportError(
            "the sync migration engine needs psycopg: pip install 'psycopg[binary]' "
            "(or use create_async_engine with Alembic's async template)"
        ) from None
    from sqlalchemy import event

    dsn = url.asyncpg_dsn()  # the URL under the postgresql:// scheme, libpq's meaning kept

    def connect() -> Any:
        return psycopg.connect(dsn, application_name=settings.application_name)

    engine = sqlalchemy_engine("postgresql+psycopg://", creator=connect, poolclass=pool.NullPool)
    search_schema = validate_schema(schema) if schema else settings.schema
    if search_schema:
        # Set after connecting rather than through libpq's `options`, which would replace
        # whatever PGOPTIONS or the URL's own `options` say.
        search_path = f'SET search_path TO "{search_schema}"'

        @event.listens_for(engine, "connect")
        def _search_path(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(search_path)
            dbapi_connection.commit()

    return engine


def create_async_engine(
    *, root: Path | None = None, default: str | None = None, schema: str | None = None
) -> AsyncEngine:
    """An async engine (Alembic's `async` template): asyncpg reads the URL itself.
    `schema` (default: DATABASE_SCHEMA) becomes each connection's search_path."""
    from sqlalchemy import pool
    from sqlalchemy.ext.asyncio import create_async_engine as sqlalchemy_async_engine

    settings = MigrationEnvironment.from_environment()
    url = migration_url(root=root, default=default, settings=settings)
    if url.is_sqlite:
        url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return sqlalchemy_async_engine(url.sqlalchemy_url(), poolclass=pool.NullPool)
    dsn = url.asyncpg_dsn()
    server_settings = {"application_name": settings.application_name}
    search_schema = validate_schema(schema) if schema else settings.schema
    if search_schema:
        server_settings["search_path"] = search_schema

    bound_password_hashing()

    async def connect() -> Any:
        import asyncpg

        return await asyncpg.connect(dsn, server_settings=server_settings)

    return sqlalchemy_async_engine(
        "postgresql+asyncpg://", poolclass=pool.NullPool, async_creator=connect
    )


def _alembic_root() -> Path:
    """The folder of the running Alembic configuration, else the cwd (as Alembic itself)."""
    try:
        from alembic import context

        config_file = context.config.config_file_name
    except (ImportError, AttributeError, NameError):
        config_file = None
    return Path(config_file).resolve().parent if config_file else Path.cwd()
