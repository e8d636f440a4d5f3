"""The launcher's resolved settings: one object built once by the CLI, read everywhere else."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from alembic_prestart.db.url import DatabaseURL
from alembic_prestart.revisions.config import AlembicConfig


@dataclass(frozen=True)
class Settings:
    database_url: DatabaseURL
    schema: str
    alembic: AlembicConfig
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    app: str = "service.main:app"
    db_wait: float = 30.0
    migration_timeout: float = 600.0
    lock_timeout: float = 10.0
    skip_migrations: bool = False
    always_migrate: bool = False
    lint: str = "warn"
    log_format: str = "text"
    log_timestamps: bool = True
    uvicorn_args: tuple[str, ...] = ()
    python: str = field(default=sys.executable)

    @property
    def project_root(self) -> Path:
        """The folder of the Alembic configuration: children run there, the app imports from
        there, relative paths resolve from there."""
        return self.alembic.root

    @property
    def alembic_ini(self) -> Path:
        return self.alembic.path

    def child_environment(self, application_name: str) -> dict[str, str]:
        """The environment of every child: settings travel here, never on a command line.

        DATABASE_URL goes on exactly as it was given (or, when none was, the default SQLite
        file): the app and env.py hand it to their own driver unchanged.
        """
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url.url,
            DATABASE_SCHEMA=self.schema,
            MIGRATION_TIMEOUT=f"{self.migration_timeout:g}",
            MIGRATION_LOCK_TIMEOUT=f"{self.lock_timeout:g}",
            MIGRATION_APPLICATION_NAME=application_name,
            LOG_FORMAT=self.log_format,
            PYTHONUNBUFFERED="1",
        )
        return env
