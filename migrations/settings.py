"""What this project's env.py adds to the launcher's settings: retrying a revision that could
not lock its table, and the statement timeout. The rest (URL, schema, timeouts, lint) is the
launcher's one reading of the environment (alembic_prestart.config.MigrationEnvironment).

The launcher passes everything through the environment, never through argv, so a password
never shows in a process list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from alembic_prestart.config import MigrationEnvironment, seconds

from service import defaults


@dataclass(frozen=True)
class MigrationSettings:
    launcher: MigrationEnvironment
    statement_timeout: float
    lock_retries: int
    lock_retry_delay: float

    @property
    def lock_timeout(self) -> float:
        return self.launcher.lock_timeout

    @property
    def schema(self) -> str:
        """Where the tables and alembic_version live on PostgreSQL: the launcher's, else this
        project's default (a bare `alembic upgrade head`)."""
        return self.launcher.schema or defaults.DATABASE_SCHEMA

    @classmethod
    def from_environment(cls) -> MigrationSettings:
        launcher = MigrationEnvironment.from_environment()
        env = os.environ
        return cls(
            launcher=launcher,
            # A runaway statement must not outlive the launcher's own migration budget.
            statement_timeout=seconds(env, "MIGRATION_STATEMENT_TIMEOUT", launcher.remaining()),
            lock_retries=int(seconds(env, "MIGRATION_LOCK_RETRIES", 3)),
            lock_retry_delay=seconds(env, "MIGRATION_LOCK_RETRY_DELAY", 2.0),
        )
