"""The launcher on a project it was not written for: Alembic's own templates, another layout."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest
from alembic_prestart.lock.core import advisory_lock_key

from tests.foreign.project import APP, BIN, SQLITE_URL, ForeignProject, Supervisor
from tests.support import postgres
from tests.support.processes import Launcher, http_json
from tests.support.project import free_port
from tests.support.urls import PROJECT_ROOT, DatabaseURL, parse_database_url

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

SKIPPED = "migration child skipped"
CHILD = "migrating to head (alembic upgrade head)"


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ALEMBIC_CONFIG")}
    return {**env, "DATABASE_URL": url, **extra}


def _tables(foreign: ForeignProject, url: str) -> set[str]:
    if url.startswith("sqlite"):
        path = foreign.root / "var" / "foreign.db"
        if not path.exists():
            return set()
        with sqlite3.connect(path) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            return {row[0] for row in rows}
    query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    return {row[0] for row in postgres.fetch(parse_database_url(url), query)}


def _versions(foreign: ForeignProject, url: str) -> list[str]:
    if "alembic_version" not in _tables(foreign, url):
        return []
    if url.startswith("sqlite"):
        with sqlite3.connect(foreign.root / "var" / "foreign.db") as connection:
            return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
    query = "SELECT version_num FROM public.alembic_version"
    return [row[0] for row in postgres.fetch(parse_database_url(url), query)]


def _migrate(foreign: ForeignProject, url: str, log: Path) -> str:
    run = Supervisor(
        ["migrate", "--alembic-config", str(foreign.ini), "--schema", "public"],
        env=_env(url),
        cwd=log.parent,
        log_path=log,
    )
    assert run.wait() == 0, run.output
    return run.output


def _serve(foreign: ForeignProject, url: str, port: int, log: Path) -> Supervisor:
    args = ["--alembic-config", str(foreign.ini), "--app", APP, "--schema", "public"]
    return Supervisor([*args, "--port", str(port)], env=_env(url), cwd=log.parent, log_path=log)


def _get(launcher: Launcher, port: int) -> dict[str, object]:
    assert launcher.wait_http(port, "/") == 200
    status, body = http_json(port, "GET", "/")
    assert status == 200, body
    answer: dict[str, object] = json.loads(body)
    return answer


def _bare_alembic(foreign: ForeignProject, url: str, **env: str) -> subprocess.CompletedProcess:
    """`alembic upgrade head` from the project's folder, no launcher anywhere."""
    return subprocess.run(
        [str(BIN / "alembic"), "upgrade", "head"],
        cwd=foreign.root,
        env=_env(url, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _failed_lines(result: subprocess.CompletedProcess) -> list[str]:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return [line for line in output.splitlines() if line.startswith("FAILED:")]


def test_migrate_applies_every_revision_in_a_child(
    foreign: ForeignProject, foreign_url: str, tmp_path: Path
) -> None:
    """`supervisor migrate` from another cwd runs the child; SQLite's file is under the root."""
    output = _migrate(foreign, foreign_url, tmp_path / "migrate.out")
    assert CHILD in output
    assert output.count("[migrate]") >= 2
    assert set(foreign.tables) <= _tables(foreign, foreign_url)
    assert _versions(foreign, foreign_url) == [foreign.revisions[-1][0]]
    if foreign_url == SQLITE_URL:
        assert (foreign.root / "var" / "foreign.db").is_file()
        assert not (tmp_path / "var").exists()


def test_check_at_head_then_with_a_pending_revision(
    foreign: ForeignProject, foreign_url: str, tmp_path: Path
) -> None:
    """check: 0 at head (./alembic.ini by default); 1 listing a new revision (ALEMBIC_CONFIG)."""
    _migrate(foreign, foreign_url, tmp_path / "migrate.out")
    at_head = Supervisor(
        ["check", "--schema", "public"],
        env=_env(foreign_url),
        cwd=foreign.root,
        log_path=tmp_path / "check-0.out",
    )
    assert at_head.wait() == 0, at_head.output
    revision = foreign.add_revision("create gizmos", "gizmos")
    pending = Supervisor(
        ["check", "--schema", "public"],
        env=_env(foreign_url, ALEMBIC_CONFIG=str(foreign.ini)),
        cwd=tmp_path,
        log_path=tmp_path / "check-1.out",
    )
    assert pending.wait() == 1, pending.output
    assert f"{revision}  create gizmos" in pending.output
    assert "gizmos" not in _tables(foreign, foreign_url)


def test_serve_execs_the_foreign_app_with_the_url_as_given(
    foreign: ForeignProject, foreign_url: str, tmp_path: Path, port: int
) -> None:
    """serve migrates and execs the app (imported from the root, DATABASE_URL unchanged); at
    head the next serve starts no child."""
    first = _serve(foreign, foreign_url, port, tmp_path / "serve-0.out")
    try:
        answer = _get(first, port)
    finally:
        first.stop()
    assert CHILD in first.output
    assert answer["database_url"] == foreign_url
    assert Path(str(answer["module"])).resolve() == (foreign.root / "shop/web.py").resolve()
    assert Path(str(answer["cwd"])).resolve() == foreign.root.resolve()
    assert set(foreign.tables) <= set(answer["tables"])  # type: ignore[arg-type]
    second = _serve(foreign, foreign_url, port, tmp_path / "serve-1.out")
    try:
        assert _get(second, port)["database_url"] == foreign_url
    finally:
        second.stop()
    assert SKIPPED in second.output
    assert CHILD not in second.output


def test_supervisor_py_serves_a_foreign_project(
    foreign: ForeignProject, tmp_path: Path, port: int
) -> None:
    """`python <this project>/supervisor.py --alembic-config <foreign ini>`: the foreign root
    is the ini's folder, not supervisor.py's."""
    args = ["--alembic-config", str(foreign.ini), "--app", APP, "--port", str(port)]
    launcher = Launcher(
        args, env=_env(SQLITE_URL), root=PROJECT_ROOT, cwd=tmp_path, log_path=tmp_path / "out"
    )
    try:
        answer = _get(launcher, port)
    finally:
        launcher.stop()
    assert CHILD in launcher.output
    assert answer["database_url"] == SQLITE_URL
    assert set(foreign.tables) <= set(answer["tables"])  # type: ignore[arg-type]
    assert (foreign.root / "var" / "foreign.db").is_file()
    assert not (PROJECT_ROOT / "var" / "foreign.db").exists()


def test_four_replicas_migrate_once_and_all_serve(
    foreign: ForeignProject, postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """Four launchers on a fresh database: each revision runs exactly once, all serve."""
    replicas = []
    for index in range(4):
        port = free_port()
        replicas.append((_serve(foreign, postgres_url.url, port, tmp_path / f"{index}.out"), port))
    try:
        for replica, port in replicas:
            assert _get(replica, port)["database_url"] == postgres_url.url
        joined = "\n".join(replica.output for replica, _port in replicas)
    finally:
        for replica, _port in replicas:
            replica.stop()
    (first, _m1, _t1), (second, _m2, _t2) = foreign.revisions
    assert joined.count(f"Running upgrade  -> {first}") == 1, joined
    assert joined.count(f"Running upgrade {first} -> {second}") == 1, joined
    assert _versions(foreign, postgres_url.url) == [second]


class AdvisoryLockHolder:
    """A session outside the launcher holding the migration lock's advisory lock."""

    def __init__(self, url: DatabaseURL, key: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(
            asyncpg.connect(url.asyncpg_dsn(), server_settings={"application_name": "holder"})
        )
        self.loop.run_until_complete(self.connection.execute(f"SELECT pg_advisory_lock({key})"))

    def release(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def test_bare_alembic_gives_up_on_a_held_lock(
    foreign: ForeignProject, postgres_url: DatabaseURL
) -> None:
    """Bare `alembic upgrade head` waits for the lock, then one FAILED: line at its deadline;
    once the lock is free it migrates."""
    holder = AdvisoryLockHolder(postgres_url, advisory_lock_key(postgres_url.database, "public"))
    try:
        started = time.monotonic()
        blocked = _bare_alembic(foreign, postgres_url.url, MIGRATION_TIMEOUT="2")
        elapsed = time.monotonic() - started
    finally:
        holder.release()
    assert blocked.returncode == 255, blocked.stdout + blocked.stderr
    [failed] = _failed_lines(blocked)
    assert "waited 2s for the migration lock on schema public" in failed
    assert "'holder'" in failed and "nothing was applied" in failed
    assert elapsed >= 2
    assert not set(foreign.tables) & _tables(foreign, postgres_url.url)
    free = _bare_alembic(foreign, postgres_url.url, MIGRATION_TIMEOUT="2")
    assert free.returncode == 0, free.stdout + free.stderr
    assert set(foreign.tables) <= _tables(foreign, postgres_url.url)


def test_bare_alembic_waits_for_a_migrating_launcher(
    foreign: ForeignProject, postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """While a launcher migrates, a bare `alembic upgrade head` waits for its lock, not past."""
    revision = foreign.add_revision("create gizmos", "gizmos")
    path = next((foreign.root / "database/db_migrations/versions").glob(f"{revision}_*.py"))
    source = path.read_text().replace(
        "    op.create_table(", "    import time\n\n    time.sleep(4)\n    op.create_table("
    )
    path.write_text(source)
    launcher = Supervisor(
        ["migrate", "--alembic-config", str(foreign.ini), "--schema", "public"],
        env=_env(postgres_url.url),
        cwd=tmp_path,
        log_path=tmp_path / "migrate.out",
    )
    deadline = time.monotonic() + 30
    while f"-> {revision}, create gizmos" not in launcher.output:
        assert launcher.process.poll() is None, launcher.output
        assert time.monotonic() < deadline, launcher.output
        time.sleep(0.05)
    blocked = _bare_alembic(foreign, postgres_url.url, MIGRATION_TIMEOUT="1")
    assert launcher.wait() == 0, launcher.output
    [failed] = _failed_lines(blocked)
    assert "'alembic-prestart migrating pid=" in failed, failed
    assert _versions(foreign, postgres_url.url) == [revision]


def test_bare_alembic_on_sqlite_gives_up_on_a_held_file_lock(foreign: ForeignProject) -> None:
    """SQLite: the lock is a flock beside the database file, resolved from the project root."""
    (foreign.root / "var").mkdir()
    lock = os.open(foreign.root / "var" / "foreign.db.migration-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        blocked = _bare_alembic(foreign, SQLITE_URL, MIGRATION_TIMEOUT="2")
    finally:
        os.close(lock)
    assert blocked.returncode == 255, blocked.stdout + blocked.stderr
    [failed] = _failed_lines(blocked)
    assert "waited 2s for the migration lock" in failed
    free = _bare_alembic(foreign, SQLITE_URL)
    assert free.returncode == 0, free.stdout + free.stderr
    assert set(foreign.tables) <= _tables(foreign, SQLITE_URL)
