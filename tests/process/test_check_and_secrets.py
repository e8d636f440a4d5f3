"""`check`, and passwords never shown anywhere."""

import time
from pathlib import Path

import pytest

from tests.support.cluster import PASSWORD, PrivateCluster
from tests.support.processes import Launcher, cmdline, descendants, http_json, launcher_env
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


def test_check_before_and_after_migrate(database_url: DatabaseURL, tmp_path: Path) -> None:
    """check: exit 1 listing the head on a fresh database, exit 0 after migrate; applies nothing."""
    env = launcher_env(database_url)
    before = Launcher(["check"], env=env, log_path=tmp_path / "1")
    assert before.wait() == 1
    assert HEAD in before.output
    assert applied_versions(database_url) == []
    assert Launcher(["migrate"], env=env, log_path=tmp_path / "2").wait() == 0
    after = Launcher(["check"], env=env, log_path=tmp_path / "3")
    assert after.wait() == 0, after.output
    assert f"schema at head ({HEAD})" in after.output


def test_check_asks_alembic_when_revisions_cannot_be_read_statically(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A computed revision id sends check to the alembic child, which still lists it."""
    path = add_revision(project_copy, "0002", HEAD, "pass")
    path.write_text(path.read_text().replace("revision = '0002'", "revision = '00' + '02'"))
    env = launcher_env(sqlite_url)
    assert Launcher(["check"], env=env, root=project_copy, log_path=tmp_path / "1").wait() == 1
    check = Launcher(["check"], env=env, root=project_copy, log_path=tmp_path / "2")
    assert check.wait() == 1
    assert "0002  test revision 0002" in check.output


def test_password_never_appears(
    private_cluster: PrivateCluster, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """Not in any output, nor in /proc/*/cmdline of any descendant, migrating or serving."""
    from tests.support import postgres

    admin = private_cluster.url()
    postgres.execute(admin, "DROP DATABASE IF EXISTS secrets_app", "CREATE DATABASE secrets_app")
    url = private_cluster.url("secrets_app")
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        print("slow revision started", file=sys.stderr, flush=True)
        time.sleep(2)
    """,
    )
    launcher = Launcher(
        ["--port", str(port), "--workers", "2"],
        env=launcher_env(url),
        root=project_copy,
        log_path=tmp_path / "out",
    )
    command_lines = []
    try:
        deadline = time.monotonic() + 30
        while "slow revision started" not in launcher.output and time.monotonic() < deadline:
            time.sleep(0.05)
        command_lines += [cmdline(pid) for pid in descendants(launcher.pid)]
        launcher.wait_http(port)
        bodies = []
        for method, path, payload, expected in (
            ("POST", "/users", b'{"name":"S","email":"s@example.com"}', 201),
            ("POST", "/users", b'{"name":"S","email":"s@example.com"}', 409),
            ("POST", "/users", b'{"name":"S","email":"nope"}', 422),
            ("GET", "/users/424242", None, 404),
            ("GET", "/readyz", None, 200),
        ):
            status, body = http_json(port, method, path, payload)
            assert status == expected, (method, path, body)
            bodies.append(body)
        command_lines += [cmdline(launcher.pid)]
        command_lines += [cmdline(pid) for pid in descendants(launcher.pid)]
    finally:
        launcher.stop()
    assert any("alembic" in line for line in command_lines)
    assert any("uvicorn" in line for line in command_lines)
    assert not [line for line in command_lines if PASSWORD in line]
    assert PASSWORD not in launcher.output
    assert not [body for body in bodies if PASSWORD.encode() in body]
