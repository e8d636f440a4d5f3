"""The FastAPI application: `uvicorn service.main:app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alembic.script import ScriptDirectory
from fastapi import FastAPI

from service.body_limit import BodySizeLimit
from service.database import create_engine
from service.database_url import PROJECT_ROOT
from service.errors import install_error_handlers
from service.routers import health, users
from service.settings import get_settings

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def migration_heads() -> tuple[str, ...]:
    """The revisions the code expects the database to be at."""
    return tuple(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.engine = create_engine(settings)
    app.state.migration_heads = migration_heads()
    try:
        yield
    finally:
        await app.state.engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(title="Users service", version="0.1.0", lifespan=lifespan)
    app.include_router(health.router)
    app.include_router(users.router)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=get_settings().max_body_bytes)
    return app


app = create_app()
