"""The launcher's settings: every default declared once, the CLI's resolved values, and what
travels to the Alembic child in its environment.

`Settings` is built once by the CLI. `MigrationEnvironment` is the part of it the Alembic child
needs; the launcher writes it into the child's environment (`to_environment`) and the env.py
helpers read it back (`from_environment`), so the CLI, the child and env.py agree by
construction: one variable name, one default, one parser per setting.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from alembic_prestart.db.url import DatabaseURL, DatabaseURLError, validate_schema
from alembic_prestart.revisions.config import AlembicConfig

# The defaults, here and nowhere else (the CLI's options and the env.py helpers read these).
DEFAULT_DB_WAIT = 30.0
DEFAULT_MIGRATION_TIMEOUT = 600.0
DEFAULT_LOCK_TIMEOUT = 10.0
DEFAULT_LINT = "warn"
LINT_MODES = ("warn", "strict", "off")

# The child's environment: set by the launcher, read by the env.py helpers.
ENV_DATABASE_URL = "DATABASE_URL"
ENV_SCHEMA = "DATABASE_SCHEMA"
ENV_MIGRATION_TIMEOUT = "MIGRATION_TIMEOUT"
ENV_LOCK_TIMEOUT = "MIGRATION_LOCK_TIMEOUT"
ENV_LINT = "MIGRATION_LINT"
ENV_APPLICATION_NAME = "MIGRATION_APPLICATION_NAME"
# The launcher's own session holds the migration lock for its child: its server pid.
ENV_LOCK_HOLDER = "MIGRATION_LOCK_HOLDER"
# When the migration phase's one budget runs out (seconds since the epoch): the lock wait,
# the analysis and the child share it.
ENV_DEADLINE = "MIGRATION_DEADLINE"


def application_name(role: str) -> str:
    """How the launcher's sessions and children show in pg_stat_activity."""
    return f"alembic-prestart {role} pid={os.getpid()}"


class SettingError(ValueError):
    """A setting in the environment that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class MigrationEnvironment:
    """What the Alembic child reads from its environment (and a bare `alembic upgrade` too)."""

    database_url: str  # as given: the env.py helpers interpret it as the launcher does
    schema: str | None  # None: the session's current schema (a bare run, no DATABASE_SCHEMA)
    migration_timeout: float
    lock_timeout: float
    lint: str
    application_name: str
    lock_holder: int | None = None
    deadline: float | None = None  # epoch seconds

    def remaining(self) -> float:
        """Seconds left of the migration budget."""
        if self.deadline is None:
            return self.migration_timeout
        return max(0.0, self.deadline - time.time())

    def to_environment(self) -> dict[str, str]:
        env = {
            ENV_DATABASE_URL: self.database_url,
            ENV_MIGRATION_TIMEOUT: f"{self.migration_timeout:g}",
            ENV_LOCK_TIMEOUT: f"{self.lock_timeout:g}",
            ENV_LINT: self.lint,
            ENV_APPLICATION_NAME: self.application_name,
        }
        if self.schema:
            env[ENV_SCHEMA] = self.schema
        if self.lock_holder is not None:
            env[ENV_LOCK_HOLDER] = str(self.lock_holder)
        if self.deadline is not None:
            env[ENV_DEADLINE] = f"{self.deadline:.3f}"
        return env

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> MigrationEnvironment:
        """Read what the launcher set; outside the launcher, the same variables with the same
        defaults. Raises SettingError naming the variable that cannot be used."""
        env = os.environ if environ is None else environ
        lint = (env.get(ENV_LINT) or DEFAULT_LINT).strip().lower()
        if lint not in LINT_MODES:
            raise SettingError(f"{ENV_LINT} must be one of {', '.join(LINT_MODES)}, not {lint!r}")
        schema = (env.get(ENV_SCHEMA) or "").strip() or None
        if schema is not None:
            try:
                validate_schema(schema)
            except DatabaseURLError as error:
                raise SettingError(f"{ENV_SCHEMA}: {error}") from None
        holder = (env.get(ENV_LOCK_HOLDER) or "").strip()
        if holder and not holder.isdigit():
            raise SettingError(f"{ENV_LOCK_HOLDER} must be a server pid, not {holder!r}")
        return cls(
            database_url=env.get(ENV_DATABASE_URL) or "",
            schema=schema,
            migration_timeout=seconds(env, ENV_MIGRATION_TIMEOUT, DEFAULT_MIGRATION_TIMEOUT),
            lock_timeout=seconds(env, ENV_LOCK_TIMEOUT, DEFAULT_LOCK_TIMEOUT),
            lint=lint,
            application_name=(
                env.get(ENV_APPLICATION_NAME) or f"alembic migrate pid={os.getpid()}"
            )[:63],
            lock_holder=int(holder) if holder else None,
            deadline=seconds(env, ENV_DEADLINE, 0.0) or None,
        )


def seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A number of seconds from the environment variable `name`, else `default`; SettingError
    names the variable when its value is not one."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value < 0 or value != value:
        raise SettingError(f"{name} must be a number of seconds, not {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """The resolved command line (flag, variable or default). Commands that do not take an
    option (check has no --port) leave its field at the value that means "not in play"."""

    database_url: DatabaseURL
    schema: str
    alembic: AlembicConfig
    db_wait: float
    log_format: str
    lint: str = "off"
    migration_timeout: float = DEFAULT_MIGRATION_TIMEOUT
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    always_migrate: bool = False
    host: str = ""
    port: int = 0
    workers: int = 1
    app: str = ""
    skip_migrations: bool = False
    max_header_bytes: int = 64 * 1024
    ready_path: str = "/"
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

    def migration_environment(
        self,
        application_name: str,
        *,
        lock_holder: int | None = None,
        deadline: float | None = None,
    ) -> MigrationEnvironment:
        return MigrationEnvironment(
            database_url=self.database_url.url,
            schema=self.schema,
            migration_timeout=self.migration_timeout,
            lock_timeout=self.lock_timeout,
            lint=self.lint,
            application_name=application_name,
            lock_holder=lock_holder,
            deadline=deadline,
        )

    def child_environment(
        self,
        application_name: str,
        *,
        lock_holder: int | None = None,
        deadline: float | None = None,
    ) -> dict[str, str]:
        """The environment of every child: settings travel here, never on a command line.

        DATABASE_URL goes on exactly as it was given (or, when none was, the project's default):
        the app and env.py hand it to the launcher's own interpretation unchanged.
        """
        env = dict(os.environ)
        env.update(
            self.migration_environment(
                application_name, lock_holder=lock_holder, deadline=deadline
            ).to_environment(),
            LOG_FORMAT=self.log_format,
            PYTHONUNBUFFERED="1",
        )
        return env
