"""pytest-alembic's four default checks against this project's migrations, on PostgreSQL, with
nothing but an `alembic_engine` fixture pointing at an empty database (and the config naming
this project's alembic.ini): env.py takes the lent Engine as Alembic's cookbook lends it."""

from collections.abc import Iterator

import pytest
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Engine

from tests.support import postgres
from tests.support.urls import PROJECT_ROOT

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def alembic_config() -> dict[str, str]:
    return {"file": str(PROJECT_ROOT / "alembic.ini")}


@pytest.fixture
def alembic_engine(postgres_admin: object) -> Iterator[Engine]:
    admin = postgres.require_postgres()
    url = postgres.create_database(admin)
    engine = create_engine(
        url.asyncpg_dsn().replace("postgresql://", "postgresql+psycopg://", 1),
        poolclass=pool.NullPool,
    )
    try:
        yield engine
    finally:
        engine.dispose()
        postgres.drop_database(admin, url)
