"""Timeouts and signals while migrating: the child's whole group goes, nothing is applied."""

import signal
import time
from pathlib import Path

import pytest

from tests.support.processes import (
    Launcher,
    group_processes,
    http_status,
    launcher_env,
    wait_for_output,
)
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

SLOW_REVISION = """
    op.create_table("slow", sa.Column("id", sa.Integer, primary_key=True))
    print("slow revision started", file=sys.stderr, flush=True)
    time.sleep(60)
"""


def test_migration_timeout_stops_the_child(
    database_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """A revision sleeping past --migration-timeout: exit 4, no process left, nothing applied."""
    add_revision(project_copy, "0002", HEAD, SLOW_REVISION)
    launcher = Launcher(
        ["--port", str(port), "--migration-timeout", "4", "--lint", "off"],
        env=launcher_env(database_url),
        root=project_copy,
        log_path=tmp_path / "out",
    )
    assert launcher.wait(timeout=30) == 4
    assert "migration timed out after 4s" in launcher.output
    assert group_processes(launcher.pid) == []
    assert applied_versions(database_url) == [HEAD]
    assert http_status(port) is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_during_migration_is_forwarded(
    signum: int, sqlite_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """SIGTERM/SIGINT/SIGHUP mid-revision: exit 128+N once the child is gone, nothing left."""
    add_revision(project_copy, "0002", HEAD, SLOW_REVISION)
    launcher = Launcher(
        ["--port", str(port)],
        env=launcher_env(sqlite_url),
        root=project_copy,
        log_path=tmp_path / "out",
    )
    wait_for_output(launcher, "slow revision started")
    launcher.process.send_signal(signum)
    assert launcher.wait(timeout=20) == 128 + signum
    assert group_processes(launcher.pid) == []
    assert applied_versions(sqlite_url) == [HEAD]
    assert "Uvicorn running" not in launcher.output


def test_sigterm_on_postgres_leaves_the_version_table_unchanged(
    postgres_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """SIGTERM during a slow PostgreSQL revision: 143, nothing left, the revision rolled back."""
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        op.create_table("slow", sa.Column("id", sa.Integer, primary_key=True))
        print("slow revision started", file=sys.stderr, flush=True)
        op.execute("SELECT pg_sleep(60)")
    """,
    )
    launcher = Launcher(
        ["--port", str(port)],
        env=launcher_env(postgres_url),
        root=project_copy,
        log_path=tmp_path / "out",
    )
    wait_for_output(launcher, "slow revision started")
    time.sleep(0.3)
    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=20) == 143
    assert group_processes(launcher.pid) == []
    assert applied_versions(postgres_url) == [HEAD]
