"""Many replicas at once, lock timeouts and crashed migrators (real PostgreSQL, real processes)."""

import asyncio
import os
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from tests.support import postgres
from tests.support.processes import (
    Launcher,
    all_pids,
    cmdline,
    group_processes,
    launcher_env,
    wait_for_output,
)
from tests.support.project import free_port
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


def _start_many(count: int, url: DatabaseURL, root: Path, tmp_path: Path, **env: str):
    launchers = []
    for index in range(count):
        port = free_port()
        launcher = Launcher(
            ["--port", str(port)],
            env=launcher_env(url, **env),
            root=root,
            log_path=tmp_path / f"launcher-{index}.out",
        )
        launchers.append((launcher, port))
    return launchers


def test_eight_launchers_migrate_once_and_all_serve(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """Eight launchers on a fresh database: all serve, each revision runs exactly once."""
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        op.add_column("users", sa.Column("test_marker", sa.String(50)))
        time.sleep(1)  # long enough for every replica to meet the lock
    """,
    )
    launchers = _start_many(8, postgres_url, project_copy, tmp_path)
    try:
        for launcher, port in launchers:
            assert launcher.wait_http(port, timeout=60) == 200
        outputs = [launcher.output for launcher, _ in launchers]
    finally:
        for launcher, _ in launchers:
            launcher.stop()
    joined = "\n".join(outputs)
    assert joined.count(f"-> {HEAD}") == 1
    assert joined.count(f"Running upgrade {HEAD} -> 0002") == 1
    assert "waiting for the migration lock" in joined
    # The launchers hold the lock themselves: one alembic child ran, under its parent's lock.
    assert joined.count("held for this run by pid") == 1
    assert "('alembic-prestart lock pid=" in joined or "('alembic-prestart migrating pid=" in joined
    assert joined.count("migrating to head (alembic upgrade head)") == 1
    assert applied_versions(postgres_url) == ["0002"]


ADD_MARKER = """
        op.add_column("users", sa.Column("test_marker", sa.String(50)))
"""


def _at_head_with_pending_0002(url: DatabaseURL, root: Path, tmp_path: Path, body: str) -> None:
    """The database migrated to the head, then a revision 0002 (this body) added to the code."""
    launcher = Launcher(["migrate"], env=launcher_env(url), root=root, log_path=tmp_path / "0")
    assert launcher.wait() == 0, launcher.output
    add_revision(root, "0002", HEAD, body)


class TableLockHolder:
    """Another session that holds a lock on test_app.users inside an open transaction."""

    def __init__(self, url: DatabaseURL) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(
            asyncpg.connect(url.asyncpg_dsn(), server_settings={"application_name": "blocker"})
        )
        self.loop.run_until_complete(
            self.connection.execute("BEGIN; SELECT count(*) FROM test_app.users")
        )

    def release(self) -> None:
        self.loop.run_until_complete(self.connection.execute("ROLLBACK"))
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def test_lock_timeout_fails_cleanly_and_names_the_blocker(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """DDL behind a held table lock: retried, then exit 3 naming the blocker; nothing applied."""
    _at_head_with_pending_0002(postgres_url, project_copy, tmp_path, ADD_MARKER)
    holder = TableLockHolder(postgres_url)
    try:
        env = launcher_env(postgres_url, MIGRATION_LOCK_RETRIES="2", MIGRATION_LOCK_RETRY_DELAY="1")
        started = time.monotonic()
        launcher = Launcher(
            ["migrate", "--lock-timeout", "1"], env=env, root=project_copy, log_path=tmp_path / "1"
        )
        assert launcher.wait(timeout=60) == 3
        elapsed = time.monotonic() - started
    finally:
        holder.release()
    # 3 attempts of 1 s and 2 delays of 1 s, plus start-up: well under 15 s.
    assert elapsed < 15, elapsed
    output = launcher.output
    assert "migration failed" in output and "lock timeout" in output
    assert "application_name 'blocker'" in output
    assert "migration failed (alembic exit status 255): lock timeout" in output
    assert output.count("[migrate] WARNING [migrations.env] lock timeout") == 2
    columns = postgres.fetch(
        postgres_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'test_app' AND table_name = 'users'",
    )
    assert "test_marker" not in {row[0] for row in columns}
    assert applied_versions(postgres_url) == [HEAD]
    retry = Launcher(
        ["migrate"], env=launcher_env(postgres_url), root=project_copy, log_path=tmp_path / "2"
    )
    assert retry.wait(timeout=60) == 0, retry.output
    assert applied_versions(postgres_url) == ["0002"]


def test_killed_migrator_releases_the_lock_within_seconds(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """SIGKILL to a launcher mid-statement: the next one gets the lock and applies the revision."""
    env = launcher_env(postgres_url)
    _at_head_with_pending_0002(
        postgres_url,
        project_copy,
        tmp_path,
        ADD_MARKER
        + """
        if os.environ.get("SLOW_REVISION"):
            print("long statement started", file=sys.stderr, flush=True)
            op.execute("SELECT pg_sleep(60)")
    """,
    )
    revision = project_copy / "migrations/versions/20261127_0002_test.py"
    revision.write_text("import os\n" + revision.read_text())
    first = Launcher(
        ["migrate"], env={**env, "SLOW_REVISION": "1"}, root=project_copy, log_path=tmp_path / "1"
    )
    deadline = time.monotonic() + 30
    while "long statement started" not in first.output:
        assert time.monotonic() < deadline and first.process.poll() is None, first.output
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(0.5)
    assert group_processes(first.pid) == []
    # The alembic child has a session of its own; it must die with its parent all the same.
    assert not [pid for pid in all_pids() if str(project_copy) in cmdline(pid)]
    started = time.monotonic()
    second = Launcher(["migrate"], env=env, root=project_copy, log_path=tmp_path / "2")
    assert second.wait(timeout=60) == 0, second.output
    assert time.monotonic() - started < 10
    assert applied_versions(postgres_url) == ["0002"]


def test_create_index_concurrently_while_others_wait(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A CREATE INDEX CONCURRENTLY revision while other launchers wait: no deadlock."""
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        time.sleep(1)  # let the other launchers start waiting for the lock
        with op.get_context().autocommit_block():
            op.create_index("ix_users_name", "users", ["name"], postgresql_concurrently=True)
    """,
    )
    launchers = _start_many(4, postgres_url, project_copy, tmp_path)
    try:
        for launcher, port in launchers:
            assert launcher.wait_http(port, timeout=60) == 200
    finally:
        for launcher, _ in launchers:
            launcher.stop()
    indexes = postgres.fetch(
        postgres_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'test_app'"
    )
    assert "ix_users_name" in {row[0] for row in indexes}
    assert applied_versions(postgres_url) == ["0002"]


def test_an_idle_session_timeout_cannot_take_the_lock_mid_migration(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """With idle_session_timeout = 3s and a 10 s revision, two launchers: the revision runs
    once, the database ends at head, and neither claims work it did not do."""
    database = postgres_url.database
    postgres.execute(postgres_url, f"ALTER DATABASE \"{database}\" SET idle_session_timeout = '3s'")
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        op.execute("CREATE TABLE test_app.slow_once (id int)")
        op.execute("SELECT pg_sleep(10)")
    """,
    )
    first = Launcher(
        ["migrate"], env=launcher_env(postgres_url), root=project_copy, log_path=tmp_path / "a"
    )
    wait_for_output(first, "-> 0002")
    second = Launcher(
        ["migrate"], env=launcher_env(postgres_url), root=project_copy, log_path=tmp_path / "b"
    )
    assert first.wait(timeout=60) == 0, first.output
    assert second.wait(timeout=60) == 0, second.output
    assert "-> 0002" not in second.output, second.output
    assert "already at head" in second.output
    assert first.output.count("-> 0002") == 1
    assert applied_versions(postgres_url) == ["0002"]


def test_a_lost_lock_stops_the_migration_before_its_next_statement(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """The launcher's lock session killed mid-migration: the child stops before its next
    statement, exit 3 naming the lost lock, and the revision is not recorded."""
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        op.execute("SELECT pg_sleep(3)")
        op.execute("CREATE TABLE test_app.after_the_loss (id int)")
    """,
    )
    launcher = Launcher(
        ["migrate"], env=launcher_env(postgres_url), root=project_copy, log_path=tmp_path / "a"
    )
    wait_for_output(launcher, "-> 0002")
    postgres.execute(
        postgres_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'alembic-prestart migrating%' "
        "AND datname = current_database()",
    )
    assert launcher.wait(timeout=60) == 3, launcher.output
    assert "the migration lock was lost" in launcher.output
    assert applied_versions(postgres_url) != ["0002"]
    tables = postgres.fetch(postgres_url, "SELECT to_regclass('test_app.after_the_loss')::text")
    assert tables[0][0] is None
