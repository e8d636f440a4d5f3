"""The command line: click gathers and checks every option, the run module does the work.

Nothing touches a database before the whole command line and environment have been parsed and
checked: a typo is a usage error (exit 2), never a migration.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from alembic_prestart import config
from alembic_prestart.config import Settings
from alembic_prestart.db.url import DatabaseURLError, parse_database_url, validate_schema
from alembic_prestart.errors import EXIT_CONFIG, EXIT_INTERNAL, SupervisorError
from alembic_prestart.observe import logs, phases
from alembic_prestart.process import header_limit
from alembic_prestart.revisions.config import AlembicConfigError, load_alembic_config

POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)
# libpq's variables that choose a server or database: set without DATABASE_URL, they mean the
# operator expected PostgreSQL.
LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


@dataclass(frozen=True)
class Defaults:
    """What an unset option means. A project's own entry point (a `supervisor.py` beside its
    alembic.ini) passes its defaults as click's `obj`; the `alembic-prestart` command serves
    any project, so it assumes none: Alembic's conventions (./alembic.ini, schema public), no
    app and no database until they are named."""

    alembic_config: Path
    schema: str
    app: str | None
    database_url: str | None  # relative SQLite paths resolve from the alembic.ini's folder
    ready_path: str = "/"


ANY_PROJECT = Defaults(
    alembic_config=Path("alembic.ini"), schema="public", app=None, database_url=None
)


class EnvOption(click.Option):
    """An option that can come from an environment variable, and says which when it is bad."""

    def __init__(self, *args: Any, project_default: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("show_envvar", True)
        kwargs.setdefault("show_default", True)
        super().__init__(*args, **kwargs)
        # The name of the Defaults field that fills this option in when it is unset: --help
        # shows the entry point's own value, not one written here.
        self.project_default = project_default

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        if self.project_default is not None:
            defaults = ctx.find_object(Defaults) or ANY_PROJECT
            value = getattr(defaults, self.project_default)
            self.show_default = str(value) if value else "none: required"
        return super().get_help_record(ctx)

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        try:
            return super().process_value(ctx, value)
        except click.BadParameter as error:
            if ctx.get_parameter_source(self.name or "") == ParameterSource.ENVIRONMENT:
                flag = "--" + (self.name or "").replace("_", "-")
                error.param_hint = f"environment variable {self.envvar} (for {flag})"
            raise


class DefaultToServe(click.Group):
    """`supervisor.py [OPTIONS]` means `supervisor.py serve [OPTIONS]`; an unknown word is a
    usage error with click's suggestion, never a server started with it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h", "--version")):
            args = ["serve", *args]
        return super().parse_args(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """click's own main, except that under --log-format json (or LOG_FORMAT=json) a usage
        error is one JSON line too, as every other failure is. (click's own exit statuses:
        an Exit's code, 0 after a command, 1 after Ctrl-C; the commands exit by themselves.)"""
        extra["windows_expand_args"] = windows_expand_args
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as error:
            if not _json_logs_wanted(list(sys.argv[1:] if args is None else args)):
                error.show()
                sys.exit(error.exit_code)
            logs.configure("json")
            ctx = error.ctx if isinstance(error, click.UsageError) else None
            hint = f" (see {ctx.command_path} --help)" if ctx else ""
            logs.logger.error("usage error: %s%s", error.format_message(), hint)
            sys.exit(error.exit_code)
        except click.Abort:  # Ctrl-C or end of input at a prompt, as click says it
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _json_logs_wanted(argv: list[str]) -> bool:
    """What --log-format (the last one given, as click reads it) or else LOG_FORMAT asks for,
    read from the launcher's own raw arguments, since parsing them is what failed."""
    own = argv[: argv.index("--")] if "--" in argv else argv
    chosen = None
    for index, argument in enumerate(own):
        if argument.startswith("--log-format="):
            chosen = argument.partition("=")[2]
        elif argument == "--log-format" and index + 1 < len(own):
            chosen = own[index + 1]
    return (chosen or os.environ.get("LOG_FORMAT")) == "json"


# uvicorn options the launcher sets itself: given after `--` they would bypass its port check,
# its readiness watch and the project root it imports the app from.
LAUNCHER_OWNED_UVICORN_OPTIONS = ("--host", "--port", "--workers", "--app-dir", "--uds", "--fd")


class ServeCommand(click.Command):
    """uvicorn's own options go after `--`; anything else unexpected is a usage error."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            args, extra = args[:split], tuple(args[split + 1 :])
            for argument in extra:
                name = argument.split("=", 1)[0]
                if name in LAUNCHER_OWNED_UVICORN_OPTIONS:
                    raise click.UsageError(
                        f"{name} after `--` would bypass the launcher's own {name}: "
                        "give it before `--`",
                        ctx,
                    )
            ctx.meta["uvicorn_args"] = extra
        return super().parse_args(ctx, args)


def option(*names: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(*names, cls=EnvOption, **kwargs)


def apply(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def decorate(command: Any) -> Any:
        for decorator in reversed(options):
            command = decorator(command)
        return command

    return decorate


COMMON = [
    option(
        "--database-url",
        envvar="DATABASE_URL",
        default="",
        project_default="database_url",
        help="postgres://, postgresql:// (any parameter asyncpg reads, e.g. ?sslmode=require) "
        "or sqlite:///path. Prefer the environment variable: a command line is visible to "
        "every user.",
    ),
    option(
        "--schema",
        envvar="DATABASE_SCHEMA",
        default=None,
        project_default="schema",
        help="PostgreSQL schema holding alembic_version.",
    ),
    option(
        "--alembic-config",
        envvar="ALEMBIC_CONFIG",
        default=None,
        project_default="alembic_config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The Alembic configuration; its folder is the project root.",
    ),
    option(
        "--db-wait",
        envvar="DB_WAIT_TIMEOUT",
        type=click.FloatRange(min=0),
        default=config.DEFAULT_DB_WAIT,
        help="Seconds to wait for the database to accept connections (exit 69 after).",
    ),
    option(
        "--log-format",
        envvar="LOG_FORMAT",
        type=click.Choice(["text", "json"]),
        default="text",
        help="json: one object per line.",
    ),
    option(
        "--log-timestamps/--no-log-timestamps",
        envvar="LOG_TIMESTAMPS",
        default=None,
        show_default="on, off under systemd (which stamps lines itself)",
        help="Prefix text log lines with the time.",
    ),
]
MIGRATING = [
    option(
        "--migration-timeout",
        envvar="MIGRATION_TIMEOUT",
        type=POSITIVE_SECONDS,
        default=config.DEFAULT_MIGRATION_TIMEOUT,
        help="One budget for the whole migration phase: the wait for the lock, the safety "
        "analysis and the Alembic child together; past it the child is stopped (exit 4).",
    ),
    option(
        "--lock-timeout",
        envvar="MIGRATION_LOCK_TIMEOUT",
        type=POSITIVE_SECONDS,
        default=config.DEFAULT_LOCK_TIMEOUT,
        help="PostgreSQL lock_timeout for migration DDL, in seconds.",
    ),
    option(
        "--always-migrate",
        envvar="ALWAYS_MIGRATE",
        is_flag=True,
        default=False,
        help="Run the alembic child even when the database is already at head.",
    ),
    option(
        "--lint",
        envvar="MIGRATION_LINT",
        type=click.Choice(config.LINT_MODES),
        default=config.DEFAULT_LINT,
        help="Safety analysis of pending DDL before it runs: warn, strict (refuse: exit 5), off.",
    ),
]
SERVING = [
    option("--host", envvar="HOST", default="127.0.0.1", help="Interface uvicorn binds."),
    option(
        "--port",
        envvar="PORT",
        type=click.IntRange(1, 65535),
        default=8000,
        help="TCP port uvicorn binds.",
    ),
    option(
        "--workers",
        envvar="WEB_CONCURRENCY",
        type=click.IntRange(min=1),
        default=1,
        help="uvicorn worker processes.",
    ),
    option(
        "--app",
        envvar="APP_MODULE",
        default=None,
        project_default="app",
        help="The ASGI app, module:attribute, imported from the project root.",
    ),
    option(
        "--max-header-bytes",
        envvar="MAX_HEADER_BYTES",
        type=click.IntRange(min=header_limit.MIN_HEADER_BYTES),
        default=header_limit.DEFAULT_MAX_HEADER_BYTES,
        help="Largest request line and headers uvicorn reads; past it: 431 and the connection "
        "closed.",
    ),
    option(
        "--ready-path",
        envvar="READY_PATH",
        default=None,
        project_default="ready_path",
        help="The path the readiness watcher GETs (under systemd's NOTIFY_SOCKET) to tell that "
        "the app serves: a cheap route that answers, so its access line says 200.",
    ),
    option(
        "--skip-migrations",
        envvar="SKIP_MIGRATIONS",
        is_flag=True,
        default=False,
        help="Neither wait for the database nor migrate; exec uvicorn at once.",
    ),
]


@click.group(cls=DefaultToServe, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alembic-prestart", prog_name="alembic-prestart")
def main() -> None:
    """Bring the database schema to head safely, then serve.

    Without a command, `serve` runs. Every option can also be set by the environment variable
    shown beside it.

    \b
    Exit codes:
      0      done: migrate, or check and status at head
      1      check, status: revisions pending
      2      usage error
      3      migration failed, the lock lost, or the revisions unreadable
      4      the migration, or the wait for its lock, timed out
      5      unsafe DDL refused (--lint strict) or found (check --lint); env.py lacks the guard
      66     --app names a module or attribute that is not there
      69     database unreachable for --db-wait, or lost while holding the lock
      70     internal error (a bug: traceback printed)
      75     the port is already taken
      78     configuration error
      128+N  stopped by signal N (SIGINT 130, SIGTERM 143)
    """


def console_main() -> None:
    """The `alembic-prestart` command: the launcher for any project (see Defaults)."""
    main(prog_name="alembic-prestart", obj=ANY_PROJECT)


@main.command(cls=ServeCommand, context_settings={"ignore_unknown_options": False})
@apply(COMMON + MIGRATING + SERVING)
@click.pass_context
def serve(ctx: click.Context, /, **options: Any) -> None:
    """Wait for the database, migrate to head, then become uvicorn (same PID).

    uvicorn's own options go after `--`: serve -- --proxy-headers
    """
    options["uvicorn_args"] = ctx.meta.get("uvicorn_args", ())
    settings = _settings(options)
    from alembic_prestart import commands

    _guard(lambda: commands.serve(settings))


@main.command()
@apply(COMMON + MIGRATING)
def migrate(**options: Any) -> None:
    """Wait for the database, migrate to head, exit 0 (a release phase, a Job)."""
    settings = _settings(options)
    from alembic_prestart import commands

    sys.exit(_guard(lambda: commands.migrate(settings)))


@main.command()
@apply(COMMON)
@click.option(
    "--lint",
    "lint_flag",
    is_flag=True,
    default=False,
    help="Also analyse the pending revisions' DDL; exit 5 on a finding.",
)
def check(lint_flag: bool, **options: Any) -> None:
    """Exit 0 when the schema is at head, 1 listing pending revisions. Applies nothing."""
    options["lint"] = "strict" if lint_flag else "off"
    settings = _settings(options)
    from alembic_prestart import commands

    sys.exit(_guard(lambda: commands.check(settings)))


@main.command()
@apply(COMMON)
def status(**options: Any) -> None:
    """Show the database's revision(s), the code's head(s) and the history. Applies nothing."""
    settings = _settings(options)
    from alembic_prestart import commands

    sys.exit(_guard(lambda: commands.status(settings)))


def _settings(options: dict[str, Any]) -> Settings:
    context = click.get_current_context()
    defaults = context.obj if isinstance(context.obj, Defaults) else ANY_PROJECT
    if "ready_path" in options and not options["ready_path"]:
        options["ready_path"] = defaults.ready_path
    if "app" in options and not options["app"]:
        if not defaults.app:
            raise click.UsageError("name the app: --app module:attribute (or APP_MODULE)")
        options["app"] = defaults.app
    timestamps = options.pop("log_timestamps")
    if timestamps is None:
        timestamps = not os.environ.get("JOURNAL_STREAM")
    logs.configure(options["log_format"], timestamps=timestamps)
    given_url = options.pop("database_url")
    libpq_variables = sorted(name for name in LIBPQ_VARIABLES if os.environ.get(name))
    try:
        alembic = load_alembic_config(options.pop("alembic_config") or defaults.alembic_config)
        url = parse_database_url(given_url, root=alembic.root, default=defaults.database_url)
        schema = validate_schema(options.pop("schema") or defaults.schema)
    except (AlembicConfigError, DatabaseURLError) as error:
        if libpq_variables and not given_url:
            error = DatabaseURLError(
                f"{error}; {', '.join(libpq_variables)} alone do not choose PostgreSQL: set "
                "DATABASE_URL=postgresql:/// to connect with them"
            )
        _fail(SupervisorError(f"configuration error: {error}", EXIT_CONFIG))
    if libpq_variables and not given_url:
        logs.logger.warning(
            "%s set, but DATABASE_URL is not: using the default database (%s); set "
            "DATABASE_URL=postgresql:/// to connect with those variables, as psql does",
            ", ".join(libpq_variables),
            url.display(),
        )
    if not alembic.script_location_is_resource:
        # Alembic would fail on these in its child, after the wait: say it now, in one line.
        if not alembic.script_location.is_dir():
            _fail(
                SupervisorError(
                    f"configuration error: the migrations folder {alembic.script_location} is "
                    f"missing (script_location in {alembic.path})",
                    EXIT_CONFIG,
                )
            )
        if not (alembic.script_location / "env.py").is_file():
            _fail(
                SupervisorError(
                    f"configuration error: {alembic.script_location / 'env.py'} is missing",
                    EXIT_CONFIG,
                )
            )
    if "app" in options:
        from alembic_prestart.process.app_check import app_problem

        problem = app_problem(options["app"], alembic.root)
        if problem:
            from alembic_prestart.errors import EXIT_APP_NOT_FOUND

            _fail(SupervisorError(f"cannot load the app: {problem}", EXIT_APP_NOT_FOUND))
    return Settings(database_url=url, schema=schema, alembic=alembic, **options)


def _guard(action: Callable[[], int | None]) -> int:
    """Run the command; an expected failure becomes one line and its exit code."""
    try:
        return action() or 0
    except SupervisorError as error:
        _fail(error)
    except Exception as error:  # a bug: still one line, and never an exit code that means more
        logs.logger.exception("internal error: %s: %s", type(error).__name__, error)
        _fail(SupervisorError("internal error (see the traceback above)", EXIT_INTERNAL))


def _fail(error: SupervisorError) -> NoReturn:
    if error.exit_code > 128:
        phases.stopping(error.message)
    logs.logger.error(error.message)
    for line in error.details:
        sys.stderr.write(f"    | {logs.redact(line)}\n")
    sys.stderr.flush()
    sys.exit(error.exit_code)
