"""docs/adopting.md's recipe with URLs as managed hosts write them: `postgres://...?sslmode=`,
a TLS-only server, libpq's PG* variables; and a version table written where the launcher does
not read it, which is an error, never "at head"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.foreign.project import APP, ForeignProject, Supervisor
from tests.foreign.test_foreign_project import _env, _get, _tables, _versions
from tests.support import postgres
from tests.support.cluster import PASSWORD, PrivateCluster, started_cluster
from tests.support.project import free_port
from tests.support.urls import DatabaseURL, parse_database_url

pytestmark = pytest.mark.slow

TLS_ONLY = (
    "hostssl all all 127.0.0.1/32 scram-sha-256",
    "hostnossl all all 127.0.0.1/32 reject",
)


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[PrivateCluster]:
    """A private cluster that refuses every TCP connection without TLS."""
    with started_cluster(free_port(), tls=True, hba_rules=TLS_ONLY) as cluster:
        yield cluster


def _run(foreign: ForeignProject, url: str, log: Path, *args: str, **env: str) -> Supervisor:
    command = Supervisor(
        ["migrate", "--alembic-config", str(foreign.ini), *args],
        env=_env(url, **env),
        cwd=log.parent,
        log_path=log,
    )
    command.wait()
    return command


def test_postgres_scheme_with_sslmode_prefer_migrates_and_serves(
    foreign: ForeignProject, postgres_url: DatabaseURL, tmp_path: Path, port: int
) -> None:
    """`postgres://...?sslmode=prefer`, as Heroku writes it: migrated in the child, then served."""
    url = postgres_url.url.replace("postgresql://", "postgres://", 1) + "?sslmode=prefer"
    migrated = _run(foreign, url, tmp_path / "migrate.out")
    assert migrated.process.returncode == 0, migrated.output
    assert set(foreign.tables) <= _tables(foreign, postgres_url.url)
    web = Supervisor(
        ["--alembic-config", str(foreign.ini), "--app", APP, "--port", str(port)],
        env=_env(url),
        cwd=tmp_path,
        log_path=tmp_path / "web.out",
    )
    try:
        assert _get(web, port)["database_url"] == url
    finally:
        web.stop()
    assert "migration child skipped" in web.output


def test_sslmode_require_on_a_tls_only_server(
    foreign: ForeignProject, tls_cluster: PrivateCluster, tmp_path: Path
) -> None:
    """`?sslmode=require` against a server that rejects plain TCP: the launcher and the child
    (psycopg or asyncpg, per template) both connect with TLS and the schema reaches head."""
    database = f"shop_{foreign.template}"
    tls_cluster.execute(f'DROP DATABASE IF EXISTS "{database}"', f'CREATE DATABASE "{database}"')
    url = f"postgres://postgres:{PASSWORD}@127.0.0.1:{tls_cluster.port}/{database}?sslmode=require"
    migrated = _run(foreign, url, tmp_path / "migrate.out")
    assert migrated.process.returncode == 0, migrated.output
    assert "(TLS, " in migrated.output
    versions = postgres.fetch(
        tls_cluster.socket_url(database), "SELECT version_num FROM public.alembic_version"
    )
    assert [row[0] for row in versions] == [foreign.revisions[-1][0]]


def test_libpq_variables_with_a_bare_url(
    foreign: ForeignProject, postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """DATABASE_URL=postgresql:/// and PGHOST, PGPORT, PGUSER, PGDATABASE: the database the
    variables name, in the launcher and the child alike (as psql would reach)."""
    env = {
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "PGUSER": "postgres",
        "PGDATABASE": postgres_url.database,
    }
    migrated = _run(foreign, "postgresql:///", tmp_path / "migrate.out", **env)
    assert migrated.process.returncode == 0, migrated.output
    assert f"/{postgres_url.database} " in migrated.output  # the "connected to" line
    assert _versions(foreign, postgres_url.url) == [foreign.revisions[-1][0]]


def test_a_version_table_written_elsewhere_is_an_error_not_at_head(
    foreign: ForeignProject, postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """env.py pins version_table_schema='public' while the launcher reads schema shop: the
    child succeeds, the read-back does not find head, exit 78 naming both places."""
    source = foreign.env_py.read_text()
    pinned = source.replace(
        "target_metadata=target_metadata",
        "target_metadata=target_metadata, version_table_schema='public'",
    )
    assert pinned != source
    foreign.env_py.write_text(pinned)
    migrated = _run(foreign, postgres_url.url, tmp_path / "migrate.out", "--schema", "shop")
    assert migrated.process.returncode == 78, migrated.output
    error = [line for line in migrated.output.splitlines() if "ERROR" in line]
    assert len(error) == 1, migrated.output
    assert "shop.alembic_version holds" in error[0] and "--schema" in error[0]
    assert "schema at head" not in migrated.output
    url = parse_database_url(postgres_url.url)
    assert postgres.fetch(url, "SELECT count(*) FROM public.alembic_version") == [(1,)]
