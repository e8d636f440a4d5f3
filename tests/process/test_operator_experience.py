"""The launcher as an operator meets it: typos, help, progress, state, and short failures."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.processes import Launcher, launcher_env, wait_for_output
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


def _run(args: list[str], url: DatabaseURL | None, root: Path, log: Path, **env: str) -> Launcher:
    launcher = Launcher(args, env=launcher_env(url, **env), root=root, log_path=log)
    launcher.wait(timeout=90)
    return launcher


@pytest.mark.parametrize("typo", ["chekc", "serv", "migrte"])
def test_a_mistyped_command_changes_nothing(
    typo: str, postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """An unknown command is a usage error (exit 2) with a suggestion; nothing is applied."""
    launcher = _run([typo], postgres_url, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 2
    assert "Did you mean" in launcher.output
    assert applied_versions(postgres_url) == []


def test_a_stray_argument_to_serve_is_a_usage_error(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """uvicorn's options go after `--`: anything else stray is exit 2 before any migration."""
    launcher = _run(["--port", "8123", "check"], sqlite_url, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 2
    assert applied_versions(sqlite_url) == []


def test_help_shows_each_variable_and_default(tmp_path: Path, project_copy: Path) -> None:
    """`serve --help` names each option's environment variable and its default."""
    launcher = _run(["serve", "--help"], None, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 0
    text = " ".join(launcher.output.split())
    for variable in ("DATABASE_URL", "PORT", "WEB_CONCURRENCY", "MIGRATION_LINT", "ALEMBIC_CONFIG"):
        assert f"env var: {variable}" in text
    assert "default: 8000" in text


def test_check_offers_only_what_applies_to_it(tmp_path: Path, project_copy: Path) -> None:
    """`check --help` has no migration timeouts: they do nothing there."""
    launcher = _run(["check", "--help"], None, project_copy, tmp_path / "out")
    assert "--migration-timeout" not in launcher.output
    assert "--lock-timeout" not in launcher.output
    assert "--lint" in launcher.output


def test_a_bad_value_from_the_environment_names_the_variable(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """PORT=abc is reported as the environment variable PORT, exit 2."""
    launcher = _run([], sqlite_url, project_copy, tmp_path / "out", PORT="abc")
    assert launcher.process.returncode == 2
    assert "environment variable PORT" in launcher.output


def test_version(tmp_path: Path, project_copy: Path) -> None:
    """`--version` prints the launcher's version."""
    launcher = _run(["--version"], None, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 0
    assert "version" in launcher.output


def test_a_wrong_app_is_found_before_migrating(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """--app service.mian:app exits 66 naming the module, before anything is applied."""
    launcher = _run(["--app", "service.mian:app"], sqlite_url, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 66
    assert "service.mian" in launcher.output
    assert applied_versions(sqlite_url) == []
    launcher = _run(["--app", "service.main:apq"], sqlite_url, project_copy, tmp_path / "o2")
    assert launcher.process.returncode == 66
    assert "'apq'" in launcher.output


def test_migrate_at_head_starts_no_child(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A second `migrate` says the database is at head and runs no alembic child."""
    assert _run(["migrate"], sqlite_url, project_copy, tmp_path / "1").process.returncode == 0
    again = _run(["migrate"], sqlite_url, project_copy, tmp_path / "2")
    assert again.process.returncode == 0
    assert "already at head" in again.output
    assert "[migrate]" not in again.output


def test_first_lines_name_the_database_without_its_password(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """The first lines say which database, host, port and schema: never a password."""
    url = DatabaseURL(postgres_url.url.replace("postgres@", "postgres:hunter2-secret@"))
    launcher = _run(["check"], url, project_copy, tmp_path / "out")
    first = launcher.output.splitlines()[:2]
    assert f"/{postgres_url.database}" in first[0] and "schema test_app" in first[0]
    assert "postgres:***@127.0.0.1" in first[0]
    assert "connected to postgresql://postgres@127.0.0.1:5432/" in first[1]
    assert "hunter2-secret" not in launcher.output


def test_text_logs_carry_timestamps_unless_told_not_to(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """Text lines start with the time; --no-log-timestamps (or systemd's journal) drops it."""
    stamped = _run(["check"], sqlite_url, project_copy, tmp_path / "1")
    assert stamped.output.splitlines()[0][2] == ":"
    plain = _run(["check", "--no-log-timestamps"], sqlite_url, project_copy, tmp_path / "2")
    assert plain.output.startswith("[alembic-prestart]")
    journal = _run(["check"], sqlite_url, project_copy, tmp_path / "3", JOURNAL_STREAM="8:1")
    assert journal.output.startswith("[alembic-prestart]")


def test_a_long_revision_reports_progress(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """Each revision's start, its duration, and `still running` every 5 s while it runs."""
    assert _run(["migrate"], sqlite_url, project_copy, tmp_path / "0").process.returncode == 0
    add_revision(project_copy, "0002", HEAD, "time.sleep(6)")
    launcher = _run(["migrate"], sqlite_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 0, launcher.output
    assert 'revision 1/1 0002 "test revision 0002" started' in launcher.output
    assert 'still running revision 1/1 0002 "test revision 0002" (5 s)' in launcher.output
    assert 'revision 1/1 0002 "test revision 0002" done in 6.' in launcher.output


def test_ctrl_c_during_a_migration_prints_one_short_summary(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """SIGINT while a revision runs: exit 130, no KeyboardInterrupt or CancelledError wall."""
    assert _run(["migrate"], sqlite_url, project_copy, tmp_path / "0").process.returncode == 0
    add_revision(
        project_copy,
        "0002",
        HEAD,
        'print("slow revision started", file=sys.stderr, flush=True)\ntime.sleep(60)',
    )
    launcher = Launcher(
        ["migrate"], env=launcher_env(sqlite_url), root=project_copy, log_path=tmp_path / "1"
    )
    wait_for_output(launcher, "slow revision started")
    launcher.process.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=20) == 130
    for noise in ("Traceback", "KeyboardInterrupt", "CancelledError"):
        assert noise not in launcher.output
    assert applied_versions(sqlite_url) == [HEAD]


def test_a_failing_revision_is_reported_once(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """The child's traceback is streamed once; the summary names the revision, exit 3."""
    add_revision(project_copy, "0002", HEAD, 'raise RuntimeError("boom in 0002")')
    launcher = _run(["migrate"], sqlite_url, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 3
    assert launcher.output.count("Traceback (most recent call last)") == 1
    assert "exception in revision" in launcher.output.splitlines()[-1]


def test_a_lost_connection_is_named_and_safe_to_retry(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A backend terminated mid-revision: the cause is the lost connection, not the revision."""
    add_revision(
        project_copy,
        "0002",
        HEAD,
        'print("slow revision started", file=sys.stderr, flush=True)\n'
        'op.execute("SELECT pg_sleep(30)")',
    )
    launcher = Launcher(
        ["migrate", "--lint", "off"],
        env=launcher_env(postgres_url),
        root=project_copy,
        log_path=tmp_path / "1",
    )
    wait_for_output(launcher, "slow revision started")
    time.sleep(0.3)
    postgres.execute(
        postgres_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid() "
        "AND datname = current_database()",
    )
    assert launcher.wait(timeout=30) == 3
    last = launcher.output.splitlines()[-1]
    assert "connection was lost" in last and "safe to retry" in last
    assert applied_versions(postgres_url) == [HEAD]
    # And it is: a rerun applies the revision.
    add_revision(project_copy, "0002", HEAD, "pass")
    assert _run(["migrate"], postgres_url, project_copy, tmp_path / "2").process.returncode == 0
    assert applied_versions(postgres_url) == ["0002"]


def test_status_shows_the_chain_with_messages(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """`status` lists current, head and each revision applied or pending, with its message."""
    assert _run(["migrate"], sqlite_url, project_copy, tmp_path / "0").process.returncode == 0
    add_revision(project_copy, "0002", HEAD, "pass")
    launcher = _run(["status"], sqlite_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 1
    assert f"current:  {HEAD}" in launcher.output
    assert "head:     0002" in launcher.output
    width = max(len(HEAD), len("0002"))
    assert f"  {'0002':<{width}}  pending  test revision 0002" in launcher.output
    assert f"  {HEAD:<{width}}  applied" in launcher.output  # the columns line up


def test_uvicorn_options_the_launcher_owns_are_refused_after_the_separator(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """`serve -- --port N` would bypass the launcher's port check: exit 2, nothing applied."""
    launcher = _run(["serve", "--", "--port", "8024"], sqlite_url, project_copy, tmp_path / "o")
    assert launcher.process.returncode == 2
    assert "give it before `--`" in launcher.output
    assert applied_versions(sqlite_url) == []


def test_check_refuses_two_heads_and_accepts_a_database_ahead(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """Two heads: `check` exits 3 (upgrade head would refuse); a database ahead: exit 0."""
    assert _run(["migrate"], sqlite_url, project_copy, tmp_path / "0").process.returncode == 0
    newer = add_revision(project_copy, "0002", HEAD, "pass")
    assert _run(["migrate"], sqlite_url, project_copy, tmp_path / "1").process.returncode == 0
    newer.unlink()
    ahead = _run(["check"], sqlite_url, project_copy, tmp_path / "2")
    assert ahead.process.returncode == 0
    assert "which this code does not know" in ahead.output
    status = _run(["status"], sqlite_url, project_copy, tmp_path / "3")
    assert "(ahead: a revision this code does not know)" in status.output
    add_revision(project_copy, "0002a", HEAD, "pass")
    add_revision(project_copy, "0002b", HEAD, "pass")
    two = _run(["check"], sqlite_url, project_copy, tmp_path / "4")
    assert two.process.returncode == 3
    assert "merge them" in two.output
