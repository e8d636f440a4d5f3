"""The launcher's resolved settings: one object built once by the CLI, read everywhere else."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from service.database_url import PROJECT_ROOT, DatabaseURL

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


@dataclass(frozen=True)
class Settings:
    database_url: DatabaseURL
    schema: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    app: str = "service.main:app"
    db_wait: float = 30.0
    migration_timeout: float = 600.0
    lock_timeout: float = 10.0
    skip_migrations: bool = False
    always_migrate: bool = False
    log_format: str = "text"
    uvicorn_args: tuple[str, ...] = ()
    project_root: Path = PROJECT_ROOT
    alembic_ini: Path = ALEMBIC_INI
    python: str = field(default=sys.executable)

    def child_environment(self, application_name: str) -> dict[str, str]:
        """The environment of every child: settings travel here, never on a command line."""
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
