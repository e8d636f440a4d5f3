"""The safety analysis as the launcher runs it: inside the Alembic child, on each statement as it
is about to run; warn or refuse (exit 5, its revision rolled back), nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.processes import Launcher, launcher_env
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

DROP_EMAIL = 'op.drop_column("users", "email")'


def _run(args: list[str], url: DatabaseURL, root: Path, log: Path, **env: str) -> Launcher:
    launcher = Launcher(args, env=launcher_env(url, **env), root=root, log_path=log)
    launcher.wait(timeout=90)
    return launcher


def _at_head(url: DatabaseURL, root: Path, tmp_path: Path) -> None:
    assert _run(["migrate"], url, root, tmp_path / "setup").process.returncode == 0


def test_strict_refuses_a_destructive_revision_before_it_runs(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """--lint strict: a pending DROP COLUMN is named with its recipe, exit 5 (never 3), the
    statement never ran and its revision was rolled back; the line says what was applied."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, DROP_EMAIL)
    launcher = _run(["migrate", "--lint", "strict"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 5, launcher.output
    assert "0002 (20261127_0002_test.py): drop-column" in launcher.output
    assert f"revisions applied before it: the database is at {HEAD}" in launcher.output
    assert applied_versions(postgres_url) == [HEAD]
    columns = postgres.fetch(
        postgres_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'test_app' AND table_name = 'users'",
    )
    assert "email" in {row[0] for row in columns}


def test_strict_applies_the_safe_revisions_before_the_refused_one(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A safe revision then an unsafe one: the first is applied (a transaction per revision),
    the second refused, and the error line names what the database is at."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, 'op.add_column("users", sa.Column("note", sa.Text))')
    add_revision(project_copy, "0003", "0002", DROP_EMAIL)
    launcher = _run(["migrate", "--lint", "strict"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 5, launcher.output
    assert "revisions applied before it: the database is at 0002" in launcher.output
    assert applied_versions(postgres_url) == ["0002"]


def test_a_batched_data_migration_is_judged_and_applied_under_strict(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A data migration that reads rows through op.get_bind() and updates them in batches is
    analysed statement by statement under strict, and applied: batches are not backfills."""
    _at_head(postgres_url, project_copy, tmp_path)
    postgres.execute(
        postgres_url,
        "INSERT INTO test_app.users (name, email) "
        "SELECT 'user ' || n, 'user' || n || '@example.com' FROM generate_series(1, 250) AS n",
    )
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        bind = op.get_bind()
        ids = [row[0] for row in bind.execute(sa.text("SELECT id FROM users ORDER BY id"))]
        for start in range(0, len(ids), 100):
            batch = ids[start : start + 100]
            bind.execute(
                sa.text("UPDATE users SET name = upper(name) WHERE id >= :low AND id <= :high"),
                {"low": batch[0], "high": batch[-1]},
            )
    """,
    )
    launcher = _run(["migrate", "--lint", "strict"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 0, launcher.output
    assert "migration guard installed" in launcher.output
    assert applied_versions(postgres_url) == ["0002"]
    upper = postgres.fetch(
        postgres_url, "SELECT count(*) FROM test_app.users WHERE name LIKE 'USER %'"
    )
    assert upper == [(250,)]


def test_warn_reports_and_migrates(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """The default (warn): one line per finding, then the migration runs."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, DROP_EMAIL)
    launcher = _run(["migrate"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 0, launcher.output
    assert launcher.output.count("unsafe migration: 0002") == 1
    assert applied_versions(postgres_url) == ["0002"]


def test_check_lint_reports_without_applying(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """`check --lint` lists the pending revision and its finding, exit 5, applies nothing."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, 'op.create_index("ix_name", "users", ["name"])')
    launcher = _run(["check", "--lint"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 5, launcher.output
    assert "create-index-not-concurrently" in launcher.output
    assert applied_versions(postgres_url) == [HEAD]


def test_an_opt_out_with_a_reason_lets_strict_pass(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A revision that silences the rule, with its reason, migrates under strict."""
    _at_head(postgres_url, project_copy, tmp_path)
    path = add_revision(project_copy, "0002", HEAD, DROP_EMAIL)
    path.write_text(
        "# migration-lint: ignore drop-column -- no release reads email any more\n"
        + path.read_text()
    )
    launcher = _run(["migrate", "--lint", "strict"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 0, launcher.output
    assert applied_versions(postgres_url) == ["0002"]


def test_sqlite_skips_the_analysis_in_one_line(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """On SQLite the rules (PostgreSQL's) do not apply: one line says so, strict migrates."""
    launcher = _run(["migrate", "--lint", "strict"], sqlite_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 0, launcher.output
    assert launcher.output.count("migration safety analysis skipped") == 1
    assert applied_versions(sqlite_url) == [HEAD]


def test_lint_can_be_set_from_the_environment(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """MIGRATION_LINT=strict is --lint strict."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, DROP_EMAIL)
    launcher = _run(
        ["migrate"], postgres_url, project_copy, tmp_path / "1", MIGRATION_LINT="strict"
    )
    assert launcher.process.returncode == 5


def test_check_lint_names_a_revision_it_cannot_render_and_judges_the_others(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A data migration that reads rows cannot be rendered offline: `check --lint` names it in
    one line and still judges (and flags) the revision after it; nothing is applied."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        rows = op.get_bind().execute(sa.text("SELECT id FROM users")).fetchall()
        for (user_id,) in rows:
            op.execute(sa.text(f"UPDATE users SET name = name WHERE id = {user_id}"))
    """,
    )
    add_revision(project_copy, "0003", "0002", DROP_EMAIL)
    launcher = _run(["check", "--lint"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 5, launcher.output
    named = [line for line in launcher.output.splitlines() if "cannot be judged" in line]
    assert len(named) == 1 and "0002" in named[0], launcher.output
    assert "0003 (20261127_0003_test.py): drop-column" in launcher.output
    assert applied_versions(postgres_url) == [HEAD]


def test_strict_refuses_a_column_of_a_constrained_domain_the_database_has(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A domain with a CHECK, already in the database: a new column of it is refused under
    strict (PostgreSQL 15 rewrites the table to check every row), nothing applied."""
    _at_head(postgres_url, project_copy, tmp_path)
    postgres.execute(
        postgres_url, "CREATE DOMAIN test_app.percentage AS integer CHECK (VALUE BETWEEN 0 AND 100)"
    )
    add_revision(
        project_copy, "0002", HEAD, 'op.execute("ALTER TABLE users ADD COLUMN done percentage")'
    )
    launcher = _run(["migrate", "--lint", "strict"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 5, launcher.output
    assert "add-column-of-constrained-domain" in launcher.output
    assert applied_versions(postgres_url) == [HEAD]
