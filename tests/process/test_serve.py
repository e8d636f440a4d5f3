"""`supervisor.py serve`: migrate in a child, check it, then become uvicorn."""

import signal
from pathlib import Path

import pytest

from tests.support.processes import Launcher, http_json, http_status, launcher_env
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions, table_exists
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


def listening_pid(port: int) -> int | None:
    """The pid owning the socket that listens on 127.0.0.1:port, from /proc."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            inodes.add(f"socket:[{inode}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if fd.readlink().as_posix() in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def test_serves_after_migrating_with_the_launcher_pid(
    database_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """The schema reaches head, and the process listening on the port is the launcher itself."""
    launcher = Launcher(
        ["--port", str(port)], env=launcher_env(database_url), log_path=tmp_path / "out"
    )
    try:
        assert launcher.wait_http(port) == 200
        assert listening_pid(port) == launcher.pid
        assert http_status(port, "/readyz") == 200
        assert applied_versions(database_url) == [HEAD]
        assert f"-> {HEAD}" in launcher.output
    finally:
        # uvicorn shuts down gracefully, then re-raises SIGTERM so its status says so.
        assert launcher.stop() in (0, -signal.SIGTERM)


def test_a_failing_revision_stops_the_start(
    database_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """A revision that raises: exit 3, its file and line named, nothing applied, no server."""
    add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
        raise RuntimeError("revision exploded")
    """,
    )
    launcher = Launcher(
        ["--port", str(port)],
        env=launcher_env(database_url),
        root=project_copy,
        log_path=tmp_path / "out",
    )
    assert launcher.wait() == 3
    output = launcher.output
    assert "migration failed (alembic exit status 1)" in output
    assert "migrations/versions/20261127_0002_test.py, line" in output
    assert "RuntimeError: revision exploded" in output
    assert "Uvicorn running" not in output
    assert http_status(port) is None
    assert applied_versions(database_url) == [HEAD]
    assert not table_exists(database_url, "half_done")


def test_extra_arguments_after_double_dash_reach_uvicorn(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """Arguments after `--` go to uvicorn (here: a default response header)."""
    launcher = Launcher(
        ["serve", "--port", str(port), "--", "--header", "X-Launched-By:supervisor"],
        env=launcher_env(sqlite_url),
        log_path=tmp_path / "out",
    )
    try:
        launcher.wait_http(port)
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.headers["X-Launched-By"] == "supervisor"
    finally:
        launcher.stop()


def test_working_directory_does_not_matter(port: int, tmp_path: Path, project_copy: Path) -> None:
    """Started from another directory, the default SQLite file lands under the project root."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    launcher = Launcher(
        ["--port", str(port)],
        env=launcher_env(None),
        root=project_copy,
        cwd=elsewhere,
        log_path=tmp_path / "out",
    )
    try:
        launcher.wait_http(port)
        status, _ = http_json(port, "POST", "/users", b'{"name":"A","email":"a@example.com"}')
        assert status == 201
    finally:
        launcher.stop()
    assert (project_copy / "var" / "app.db").is_file()
    assert list(elsewhere.iterdir()) == []


def test_data_survives_a_restart(port: int, tmp_path: Path, project_copy: Path) -> None:
    """A user created through the API on the default SQLite is there after a restart."""
    env = launcher_env(None)
    first = Launcher(["--port", str(port)], env=env, root=project_copy, log_path=tmp_path / "1")
    try:
        first.wait_http(port)
        status, body = http_json(port, "POST", "/users", b'{"name":"A","email":"a@example.com"}')
        assert status == 201
    finally:
        first.stop()
    second = Launcher(["--port", str(port)], env=env, root=project_copy, log_path=tmp_path / "2")
    try:
        second.wait_http(port)
        import json

        user_id = json.loads(body)["id"]
        assert http_json(port, "GET", f"/users/{user_id}")[0] == 200
        assert "migration child skipped" in second.output
    finally:
        second.stop()


@pytest.mark.parametrize("value", ["0", "70000", "abc"])
def test_bad_port_is_a_usage_error(value: str, tmp_path: Path) -> None:
    """An impossible --port is exit 2 with click's one-line usage error."""
    launcher = Launcher(["--port", value], env=launcher_env(None), log_path=tmp_path / "out")
    assert launcher.wait() == 2
    assert "Traceback" not in launcher.output
