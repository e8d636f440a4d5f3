"""The service's settings, read once from the environment."""

from __future__ import annotations

from functools import lru_cache

from alembic_prestart.db.url import DatabaseURL, parse_database_url, validate_schema
from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service import defaults

PROJECT_ROOT = defaults.PROJECT_ROOT
ALEMBIC_INI = defaults.ALEMBIC_INI


class Settings(BaseSettings):
    # A rejected value is never echoed: DATABASE_URL may hold a password.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", hide_input_in_errors=True)

    database_url: str = ""
    database_schema: str = defaults.DATABASE_SCHEMA
    # Pool sizing per worker: enough for wrk's concurrency without queueing on the pool.
    database_pool_size: int = 20
    # Seconds to connect, and for one statement, before a request gets its 503.
    database_timeout: float = 5.0
    # Requests bodies above this size get 413 before they are read whole.
    max_body_bytes: int = 64 * 1024

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parse_database_url(
            value, root=PROJECT_ROOT, default=defaults.DATABASE_URL
        )  # rejects what no driver could read
        return value

    @field_validator("database_schema")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        return validate_schema(value)

    @property
    def url(self) -> DatabaseURL:
        return parse_database_url(
            self.database_url, root=PROJECT_ROOT, default=defaults.DATABASE_URL
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
