"""The command line, in process with click's CliRunner: options, environment variables, help,
defaults per entry point, and the exit codes of usage and configuration errors. Nothing here
needs a database server or a child process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from alembic_prestart import __version__, errors
from alembic_prestart.cli import ANY_PROJECT, console_main, main
from click.testing import CliRunner

from supervisor import THIS_PROJECT
from tests.support.project import LAUNCHER_VARIABLES


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in (*LAUNCHER_VARIABLES, "PGHOST", "PGDATABASE", "PGUSER", "PGPORT", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_version_is_the_launchers_own(runner: CliRunner) -> None:
    """--version names the alembic-prestart distribution's version."""
    result = runner.invoke(main, ["--version"], obj=ANY_PROJECT)
    assert result.exit_code == 0
    assert result.output.strip() == f"alembic-prestart, version {__version__}"


def test_help_shows_each_entry_points_own_defaults(runner: CliRunner) -> None:
    """The command's --help says public and required; supervisor.py's says this project's."""
    generic = runner.invoke(main, ["serve", "--help"], obj=ANY_PROJECT, terminal_width=200)
    assert "default: (public)" in generic.output
    assert "default: (none: required)" in generic.output  # --app and --database-url
    ours = runner.invoke(main, ["serve", "--help"], obj=THIS_PROJECT, terminal_width=200)
    assert "default: (test_app)" in ours.output
    assert "default: (service.main:app)" in ours.output
    assert "env var: DATABASE_URL" in ours.output


def test_migration_timeout_help_describes_one_budget(runner: CliRunner) -> None:
    """--migration-timeout's help says it covers the lock wait, the analysis and the child."""
    result = runner.invoke(main, ["migrate", "--help"], obj=ANY_PROJECT, terminal_width=200)
    assert "One budget for the whole migration phase" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "http"), ("MAX_HEADER_BYTES", "64"), ("MIGRATION_LINT", "loud"), ("PORT", "0")],
)
def test_a_bad_environment_variable_is_a_usage_error_naming_it(
    runner: CliRunner, variable: str, value: str
) -> None:
    """Exit 2 and the variable's name, before anything touches a database."""
    result = runner.invoke(main, ["serve"], obj=THIS_PROJECT, env={variable: value})
    assert result.exit_code == 2
    assert f"environment variable {variable}" in result.output


def test_an_unknown_command_is_a_usage_error_with_a_suggestion(runner: CliRunner) -> None:
    """A typo is exit 2 with click's suggestion, never a server started with it."""
    result = runner.invoke(main, ["migarte"], obj=THIS_PROJECT)
    assert result.exit_code == 2
    assert "migrate" in result.output


def test_the_command_needs_a_database_url(runner: CliRunner, tmp_path: Path) -> None:
    """alembic-prestart assumes no database: without DATABASE_URL, exit 78 saying what to set,
    and naming the PG* variables it saw."""
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "env.py").write_text("")
    result = runner.invoke(
        main, ["check", "--alembic-config", str(ini)], obj=ANY_PROJECT, env={"PGHOST": "db"}
    )
    assert result.exit_code == 78
    assert "no database URL: set DATABASE_URL" in result.output
    assert "PGHOST alone do not choose PostgreSQL" in result.output


def test_libpq_variables_without_a_url_are_said_once(runner: CliRunner, project_copy: Path) -> None:
    """PG* set, no DATABASE_URL, this project's SQLite default: one warning naming them."""
    obj = type(THIS_PROJECT)(
        alembic_config=project_copy / "alembic.ini",
        schema=THIS_PROJECT.schema,
        app=THIS_PROJECT.app,
        database_url=THIS_PROJECT.database_url,
    )
    result = runner.invoke(main, ["check"], obj=obj, env={"PGDATABASE": "app", "PGHOST": "db"})
    assert result.exit_code == 1, result.output
    warnings = [line for line in result.output.splitlines() if "DATABASE_URL is not" in line]
    assert len(warnings) == 1
    assert "PGDATABASE, PGHOST set" in warnings[0]


def test_console_script_is_the_command_for_any_project(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed command runs with no project's defaults (prog name alembic-prestart)."""
    monkeypatch.setattr("sys.argv", ["alembic-prestart", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        console_main()
    assert exit_info.value.code == 0


def test_the_command_needs_an_app_to_serve(runner: CliRunner) -> None:
    """alembic-prestart serve without --app: exit 2 naming the option, nothing touched."""
    result = runner.invoke(main, ["serve"], obj=ANY_PROJECT)
    assert result.exit_code == 2
    assert "--app module:attribute" in result.output


@pytest.mark.parametrize(
    ("arguments", "env"),
    [
        (["--log-format", "json", "--prot", "1"], {}),
        (["serve", "--log-format=json", "--port", "abc"], {}),
        (["servx"], {"LOG_FORMAT": "json"}),
        (["serve"], {"LOG_FORMAT": "json"}),  # no --app for the command of any project
        (["--log-format", "text", "--log-format", "json", "--bogus"], {}),  # the last one wins
        (["--bogus", "--log-format"], {"LOG_FORMAT": "json"}),  # no value: the environment's
    ],
)
def test_a_usage_error_under_json_logs_is_one_json_line(
    runner: CliRunner, arguments: list[str], env: dict[str, str]
) -> None:
    """Exit 2 as ever, but as the single JSON object every other failure is."""
    result = runner.invoke(main, arguments, obj=ANY_PROJECT, env=env)
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["message"].startswith("usage error: ")
    assert entry["message"].endswith("--help)")


def test_json_logs_after_the_double_dash_are_uvicorns_not_the_launchers(
    runner: CliRunner,
) -> None:
    """`-- --log-format json` would be uvicorn's argument: the usage error stays click's text."""
    result = runner.invoke(main, ["--prot", "1", "--", "--log-format", "json"], obj=ANY_PROJECT)
    assert result.exit_code == 2
    assert result.output.startswith("Usage: ")
    assert "No such option '--prot'" in result.output


def test_help_lists_every_exit_code(runner: CliRunner) -> None:
    """The installed command has no docs folder beside it: --help itself names the codes."""
    result = runner.invoke(main, ["--help"], obj=ANY_PROJECT, terminal_width=200)
    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    listed = {int(match[1]) for match in re.finditer(r"^ +(\d+) {2,}\S", result.output, re.M)}
    assert codes <= listed, codes - listed
    assert "128+N" in result.output


def test_main_keeps_clicks_signature(runner: CliRunner) -> None:
    """Arguments by position, as click's Command.main takes them; standalone or not."""
    assert main(["--version"], "alembic-prestart", None, False, obj=ANY_PROJECT) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"], "alembic-prestart", None, True, obj=ANY_PROJECT)
    assert exit_info.value.code == 0
