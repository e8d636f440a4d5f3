"""The command line: click gathers options, the run module does the work."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import click

from launcher import logs, phases
from launcher.errors import EXIT_CONFIG, EXIT_INTERNAL, SupervisorError
from launcher.settings import ALEMBIC_INI, MIGRATIONS_DIR, Settings
from service.database_url import (
    DEFAULT_SCHEMA,
    DatabaseURLError,
    parse_database_url,
    validate_schema,
)

POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)


class DefaultToServe(click.Group):
    """`supervisor.py [OPTIONS]` means `supervisor.py serve [OPTIONS]`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


def database_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--database-url",
            envvar="DATABASE_URL",
            default="",
            show_default="SQLite var/app.db",
            help="postgres://, postgresql:// or sqlite:///path (relative to the project root). "
            "Prefer the environment variable: a command line is visible to every user.",
        ),
        click.option(
            "--schema",
            envvar="DATABASE_SCHEMA",
            default=DEFAULT_SCHEMA,
            show_default=True,
            help="PostgreSQL schema holding the tables and alembic_version.",
        ),
        click.option(
            "--db-wait",
            envvar="DB_WAIT_TIMEOUT",
            type=click.FloatRange(min=0),
            default=30.0,
            show_default=True,
            help="Seconds to wait for the database to accept connections.",
        ),
        click.option(
            "--migration-timeout",
            envvar="MIGRATION_TIMEOUT",
            type=POSITIVE_SECONDS,
            default=600.0,
            show_default=True,
            help="Seconds the migration may run before it is stopped (exit 4).",
        ),
        click.option(
            "--lock-timeout",
            envvar="MIGRATION_LOCK_TIMEOUT",
            type=POSITIVE_SECONDS,
            default=10.0,
            show_default=True,
            help="PostgreSQL lock_timeout for migration DDL, in seconds.",
        ),
        click.option(
            "--log-format",
            envvar="LOG_FORMAT",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="json: one object per line.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(cls=DefaultToServe, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Bring the database schema to head safely, then serve.

    Without a command, `serve` runs.
    """


@main.command(context_settings={"ignore_unknown_options": False})
@database_options
@click.option(
    "--host", envvar="HOST", default="127.0.0.1", show_default=True, help="Interface uvicorn binds."
)
@click.option(
    "--port",
    envvar="PORT",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="TCP port uvicorn binds.",
)
@click.option(
    "--workers",
    envvar="WEB_CONCURRENCY",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="uvicorn worker processes.",
)
@click.option(
    "--app",
    envvar="APP_MODULE",
    default="service.main:app",
    show_default=True,
    help="The ASGI application, module:attribute.",
)
@click.option(
    "--skip-migrations",
    envvar="SKIP_MIGRATIONS",
    is_flag=True,
    default=False,
    help="Do not wait for the database nor migrate; exec uvicorn at once.",
)
@click.option(
    "--always-migrate",
    envvar="ALWAYS_MIGRATE",
    is_flag=True,
    default=False,
    help="Run the alembic child even when the database is already at head.",
)
@click.argument("uvicorn_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- UVICORN_ARGS]...")
def serve(**options: Any) -> None:
    """Wait for the database, migrate to head, then become uvicorn (same PID)."""
    settings = _settings(options)  # checks the project files before anything imports them
    from launcher import run

    _guard(lambda: run.serve(settings))


@main.command()
@database_options
def migrate(**options: Any) -> None:
    """Wait for the database, migrate to head, exit 0 (a release phase, a Job)."""
    settings = _settings(options)  # checks the project files before anything imports them
    from launcher import run

    sys.exit(_guard(lambda: run.migrate(settings)))


@main.command()
@database_options
def check(**options: Any) -> None:
    """Exit 0 when the schema is at head, 1 listing pending revisions. Applies nothing."""
    settings = _settings(options)  # checks the project files before anything imports them
    from launcher import run

    sys.exit(_guard(lambda: run.check(settings)))


def _settings(options: dict[str, Any]) -> Settings:
    logs.configure(options["log_format"])
    try:
        url = parse_database_url(options.pop("database_url"))
        schema = validate_schema(options.pop("schema"))
    except DatabaseURLError as error:
        _fail(SupervisorError(f"configuration error: {error}", EXIT_CONFIG))
    logs.add_secret(url.password)
    if url.password:  # and as it is written in a URL
        logs.add_secret(quote(url.password, safe=""))
    problem = project_files_problem()
    if problem:
        _fail(SupervisorError(f"configuration error: {problem}", EXIT_CONFIG))
    options["uvicorn_args"] = tuple(options.get("uvicorn_args", ()))
    return Settings(database_url=url, schema=schema, **options)


def project_files_problem() -> str | None:
    """What is wrong with alembic.ini or migrations/, checked before any child is started."""
    import configparser

    if not ALEMBIC_INI.is_file():
        return f"{ALEMBIC_INI} is missing"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ALEMBIC_INI, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        first_line = str(error).splitlines()[0]
        return f"{ALEMBIC_INI} is malformed: {first_line}"
    if not parser.has_option("alembic", "script_location"):
        return f"{ALEMBIC_INI} has no [alembic] script_location"
    if not MIGRATIONS_DIR.is_dir():
        return f"the migrations folder {MIGRATIONS_DIR} is missing"
    for required in ("env.py", "versions"):
        if not (MIGRATIONS_DIR / required).exists():
            return f"{MIGRATIONS_DIR / required} is missing"
    return None


def _guard(action: Callable[[], int | None]) -> int:
    """Run the command; an expected failure becomes one line and its exit code."""
    try:
        return action() or 0
    except SupervisorError as error:
        _fail(error)
    except Exception as error:  # a bug: still one line, and never an exit code that means more
        logs.logger.exception("internal error: %s: %s", type(error).__name__, error)
        _fail(SupervisorError("internal error (see the traceback above)", EXIT_INTERNAL))


def _fail(error: SupervisorError) -> None:
    if error.exit_code > 128:
        phases.stopping(error.message)
    logs.logger.error(error.message)
    if error.details:
        logs.logger.error("last lines of its output:")
        for line in error.details:
            sys.stderr.write(f"    | {logs.redact(line)}\n")
    sys.stderr.flush()
    sys.exit(error.exit_code)
