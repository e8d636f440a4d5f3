"""libpq is the oracle for DATABASE_URL: with each URL and environment of the matrix, psql and
every connection path of the project (the launcher's own session, the Alembic child's async and
sync engines, the service's pool) land on the same database, as the same user, on the same port,
with TLS or without, or all fail; where asyncpg alone cannot do what libpq does, every path
refuses the URL with the same reason (the launcher: exit 78).

Two servers: the main one (trust, no TLS, its socket in /var/run/postgresql) and a private
cluster (TLS, passwords on TCP, and on its socket for one role). One module fixture runs the
cases on two threads, each case a psql, a launcher and a child of tests/support/libpq.py's fork
server for the other paths; each case's test reports its own outcome.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import postgres
from tests.support.cluster import PASSWORD, PrivateCluster, started_cluster
from tests.support.libpq import Outcome, ProjectPaths, launcher_reached, psql
from tests.support.parallel import run_all
from tests.support.processes import Launcher
from tests.support.project import clean_environment, free_port
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

MAIN = "127.0.0.1:5432"
MAIN_SOCKET_DIRECTORY = "/var/run/postgresql"
# A password holding both characters the passfile escapes, and that line's spelling of it.
ESCAPED_PASSWORD = "co:lon\\back"
PASSFILE_PASSWORD = "co\\:lon\\\\back"
ODD_USER = "odd user:é"
ODD_DATABASE = "db/é x"
SECRETS = (PASSWORD, ESCAPED_PASSWORD, PASSFILE_PASSWORD)

HBA_RULES = (
    "local all app_pw scram-sha-256",  # the one role that needs a password on the socket
    "hostssl all app_tls 127.0.0.1/32 scram-sha-256",
    "hostnossl all app_tls 127.0.0.1/32 reject",
)


@dataclass(frozen=True)
class Case:
    url: str  # DATABASE_URL exactly as the user writes it
    env: dict[str, str] = field(default_factory=dict)
    # What psql is given where the project accepts a spelling libpq does not (the same meaning).
    oracle_url: str | None = None
    # Where asyncpg cannot do what libpq does: every path refuses, saying this.
    refused: str | None = None


@pytest.fixture(scope="module")
def oracle_cluster() -> Iterator[PrivateCluster]:
    """A private cluster with TLS, password roles, and one role that needs it on the socket."""
    with started_cluster(free_port(), tls=True, hba_rules=HBA_RULES) as cluster:
        escaped = ESCAPED_PASSWORD.replace("'", "''")
        statements = [
            f"CREATE ROLE app_pw LOGIN PASSWORD '{escaped}'",
            f"CREATE ROLE app_tls LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE ROLE app_other LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE ROLE \"app+plus\" LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE ROLE \"app plus\" LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE ROLE \"{ODD_USER}\" LOGIN PASSWORD '{PASSWORD}'",
        ]
        os_user = pwd.getpwuid(os.geteuid()).pw_name
        if os_user != "postgres":
            statements.append(f"CREATE ROLE \"{os_user}\" LOGIN PASSWORD '{PASSWORD}'")
        cluster.execute(*statements)
        yield cluster


def _matrix(
    cluster: PrivateCluster, admin: DatabaseURL, files: Path
) -> tuple[dict[str, Case], list[str]]:
    """Each case with a database of its own; the main server's databases, to drop after."""
    on_main: list[str] = []
    port, pw = cluster.port, PASSWORD
    here = f"127.0.0.1:{port}"
    dead = f"127.0.0.1:{free_port()}"
    certificate = cluster.certificate

    def c_db(name: str, owner: str = "postgres") -> str:
        cluster.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def m_db(name: str) -> str:
        name = f"lq{os.getpid()}_{name}"
        postgres.execute(admin, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        on_main.append(name)
        return name

    def passfile(name: str, *lines: str) -> str:
        path = files / name
        path.write_text("".join(f"{line}\n" for line in lines))
        path.chmod(0o600)
        return str(path)

    home = files / "home"
    home.mkdir()
    (home / ".pgpass").write_text(f"127.0.0.1:{port}:*:app_other:{pw}\n")
    (home / ".pgpass").chmod(0o600)
    with_password = {"PGPASSWORD": pw}
    socket_url = f"postgresql://postgres@{quote(MAIN_SOCKET_DIRECTORY, safe='')}"

    cases = {
        # The three schemes.
        "scheme_postgresql": Case(f"postgresql://postgres@{MAIN}/{m_db('scheme')}"),
        "scheme_postgres": Case(f"postgres://postgres@{MAIN}/{m_db('short')}"),
        "scheme_postgresql_asyncpg": Case(
            f"postgresql+asyncpg://postgres@{MAIN}/{m_db('sqla')}",
            oracle_url=f"postgresql://postgres@{MAIN}/{on_main[-1]}",
        ),
        # No database in the path: PGDATABASE, as psql reads it.
        "empty_path_with_pgdatabase": Case(
            f"postgresql://postgres@{MAIN}/", {"PGDATABASE": m_db("empty_path")}
        ),
        "no_path_with_pgdatabase": Case(
            f"postgresql://postgres@{MAIN}", {"PGDATABASE": m_db("no_path")}
        ),
        # libpq's variables fill what the URL leaves out.
        "bare_url_with_pg_variables": Case(
            "postgresql://",
            {
                "PGHOST": "127.0.0.1",
                "PGPORT": str(port),
                "PGUSER": "app_other",
                "PGDATABASE": c_db("bare", owner="app_other"),
                **with_password,
            },
        ),
        "database_only_with_pghost_pgport_pguser": Case(
            f"postgresql:///{c_db('triple_slash')}",
            {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres", **with_password},
        ),
        "pgport_fills_a_missing_port": Case(
            f"postgresql://postgres@127.0.0.1/{c_db('pgport')}",
            {"PGPORT": str(port), **with_password},
        ),
        # Unix sockets.
        "socket_in_host_parameter": Case(
            f"postgresql:///{m_db('socket_param')}?host={MAIN_SOCKET_DIRECTORY}",
            {"PGUSER": "postgres"},
        ),
        "socket_in_pghost": Case(
            f"postgresql:///{m_db('socket_pghost')}",
            {"PGHOST": MAIN_SOCKET_DIRECTORY, "PGUSER": "postgres"},
        ),
        "socket_with_sslmode_require": Case(f"{socket_url}/{m_db('socket_tls')}?sslmode=require"),
        "host_parameter_over_the_urls_host": Case(
            f"postgresql://postgres@localhost/{m_db('host_param')}?host={MAIN_SOCKET_DIRECTORY}"
        ),
        # Query parameters for what the URL's parts also say.
        "dbname_parameter": Case(f"postgresql://postgres@{MAIN}?dbname={m_db('dbname')}"),
        "dbname_parameter_over_the_path": Case(
            f"postgresql://postgres@{MAIN}/postgres?dbname={m_db('dbname_over')}"
        ),
        "database_parameter_asyncpgs_spelling": Case(
            f"postgresql://postgres@{MAIN}?database={m_db('database')}",
            oracle_url=f"postgresql://postgres@{MAIN}?dbname={on_main[-1]}",
        ),
        "user_parameter": Case(
            f"postgresql://{here}/{c_db('user_param')}?user=app_other", with_password
        ),
        "plus_in_a_query_value": Case(
            # A + is a +, as everywhere else in a URL; "app plus" is a role too.
            f"postgresql://{here}/{c_db('plus')}?user=app+plus",
            with_password,
        ),
        "user_parameter_over_the_urls_user": Case(
            f"postgresql://postgres@{here}/{c_db('user_over')}?user=app_other", with_password
        ),
        "port_parameter": Case(
            # The same name on the main server (trust: any password does): the port decides.
            f"postgresql://postgres@127.0.0.1/{c_db(m_db('port_param'))}?port={port}",
            with_password,
        ),
        "percent_encoded_user_and_database": Case(
            f"postgresql://{quote(ODD_USER, safe='')}@{here}/"
            f"{quote(c_db(ODD_DATABASE, owner=ODD_USER), safe='')}",
            with_password,
        ),
        "user_from_the_operating_system": Case(
            # libpq asks the system who runs it; USER and LOGNAME name another role here.
            f"postgresql://{here}/{c_db('os_user')}",
            {"USER": "app_other", "LOGNAME": "app_other", **with_password},
        ),
        # Several hosts, the first one down.
        "several_hosts_first_down": Case(f"postgresql://postgres@{dead},{MAIN}/{m_db('hosts')}"),
        # sslmode, in the URL and in PGSSLMODE, on a TLS server and on a plain one.
        "sslmode_disable_on_tls_server": Case(
            f"postgresql://postgres@{here}/{c_db('disable')}?sslmode=disable", with_password
        ),
        "sslmode_prefer_on_tls_server": Case(
            f"postgresql://postgres@{here}/{c_db('prefer')}?sslmode=prefer", with_password
        ),
        "sslmode_require_on_tls_server": Case(
            f"postgresql://app_tls@{here}/{c_db('require', owner='app_tls')}?sslmode=require",
            with_password,
        ),
        "no_sslmode_on_tls_server": Case(
            f"postgresql://app_tls@{here}/{c_db('default_tls', owner='app_tls')}", with_password
        ),
        "sslmode_prefer_on_plain_server": Case(
            f"postgresql://postgres@{MAIN}/{m_db('plain_prefer')}?sslmode=prefer"
        ),
        "sslmode_require_on_plain_server": Case(
            f"postgresql://postgres@{MAIN}/{m_db('plain_require')}?sslmode=require"
        ),
        "pgsslmode_require_on_plain_server": Case(
            f"postgresql://postgres@{MAIN}/{m_db('plain_pgsslmode')}", {"PGSSLMODE": "require"}
        ),
        "pgsslmode_disable_on_tls_server": Case(
            f"postgresql://app_other@{here}/{c_db('pgsslmode_disable')}",
            {"PGSSLMODE": "disable", **with_password},
        ),
        "url_sslmode_over_pgsslmode": Case(
            f"postgresql://app_tls@{here}/{c_db('url_over_env', owner='app_tls')}?sslmode=require",
            {"PGSSLMODE": "disable", **with_password},
        ),
        "verify_full_with_sslrootcert": Case(
            f"postgresql://app_tls@localhost:{port}/{c_db('verify_full', owner='app_tls')}"
            f"?sslmode=verify-full&sslrootcert={certificate}",
            with_password,
        ),
        "verify_ca_with_pgsslrootcert": Case(
            f"postgresql://app_tls@{here}/{c_db('verify_ca', owner='app_tls')}",
            {"PGSSLMODE": "verify-ca", "PGSSLROOTCERT": str(certificate), **with_password},
        ),
        # The passfile.
        "passfile_with_escaped_colon_and_backslash": Case(
            f"postgresql://app_pw@{here}/{c_db('passfile', owner='app_pw')}",
            {
                "PGPASSFILE": passfile(
                    "escaped", f"127.0.0.1:{port}:passfile:app_pw:{PASSFILE_PASSWORD}"
                )
            },
        ),
        "passfile_in_home": Case(
            f"postgresql://app_other@{here}/{c_db('home_pgpass')}", {"HOME": str(home)}
        ),
        "passfile_line_for_each_host": Case(
            # libpq reads one line per host; asyncpg sends one password to every host.
            f"postgresql://app_other@{dead},{here}/{c_db('passfile_hosts')}",
            {"PGPASSFILE": passfile("hosts", f"{dead}:*:*:not-the-password", f"{here}:*:*:{pw}")},
            refused="the passfile gives the hosts of this URL different passwords",
        ),
        "passfile_one_line_for_several_hosts": Case(
            f"postgresql://app_pw@{dead},{here}/{c_db('passfile_star', owner='app_pw')}",
            {"PGPASSFILE": passfile("star", f"127.0.0.1:*:*:app_pw:{PASSFILE_PASSWORD}")},
        ),
        "passfile_for_a_socket_directory": Case(
            f"postgresql://app_pw@/{c_db('passfile_socket', owner='app_pw')}"
            f"?host={cluster.directory}&port={port}",
            {
                "PGPASSFILE": passfile(
                    "socket", f"{cluster.directory}:{port}:*:app_pw:{PASSFILE_PASSWORD}"
                )
            },
        ),
        # Parameters for the client or the session, not the target.
        "connect_timeout_parameter": Case(
            f"postgresql://postgres@{MAIN}/{m_db('connect_timeout')}?connect_timeout=5"
        ),
        "application_name_parameter": Case(
            f"postgresql://postgres@{MAIN}/{m_db('app_name')}?application_name=libpq-oracle"
        ),
        "options_parameter": Case(
            f"postgresql://postgres@{MAIN}/{m_db('options')}?options=-c%20search_path%3Dx"
        ),
        "options_parameter_with_a_bare_equals_sign": Case(
            # asyncpg reads it (accepted, as every parameter asyncpg reads); libpq wants %3D.
            f"postgresql://postgres@{MAIN}/{m_db('options_bare')}?options=-c%20search_path=x",
            oracle_url=f"postgresql://postgres@{MAIN}/{on_main[-1]}?options=-c%20search_path%3Dx",
        ),
    }
    return cases, on_main


def _environment(home: Path, case: Case) -> dict[str, str]:
    """A clean environment (no launcher setting, no libpq variable, an empty home: no
    ~/.pgpass, ~/.postgresql or service file), then the case's own."""
    env = {
        name: value
        for name, value in clean_environment().items()
        if not name.startswith("PG") and name not in ("USER", "LOGNAME")
    }
    return {**env, "HOME": str(home), **case.env}


def _check(case: Case, env: dict[str, str], paths: ProjectPaths, log: Path) -> None:
    oracle = psql(case.oracle_url or case.url, env)
    with_url = {**env, "DATABASE_URL": case.url}
    launcher = Launcher(["status", "--db-wait", "2"], env=with_url, log_path=log)
    code = launcher.wait(timeout=60)
    output = launcher.output
    reached = launcher_reached(output)
    errors = [line for line in output.splitlines() if " ERROR " in line]
    seen = {
        "launcher": Outcome(reached) if reached else Outcome(error=f"exit {code}: {errors}"),
        **paths.reach(with_url),
    }
    table = "\n".join([f"  psql: {oracle}", *(f"  {path}: {seen[path]}" for path in seen)])
    assert "Traceback" not in output, output
    for secret in SECRETS:
        assert secret not in output, output
    if case.refused is not None:
        assert code == 78, f"{output}\n{table}"
        for path, outcome in seen.items():
            assert outcome.error and case.refused in outcome.error, f"{path}\n{table}"
        return
    if oracle.reached is None:
        assert code in (69, 78), f"{output}\n{table}"
        assert all(outcome.reached is None for outcome in seen.values()), table
        return
    assert code in (0, 1), f"{output}\n{table}"  # status: at head, or revisions pending
    disagree = [path for path, outcome in seen.items() if outcome.reached != oracle.reached]
    assert not disagree, f"{', '.join(disagree)} disagree with libpq:\n{table}"


@pytest.fixture(scope="module")
def outcomes(
    oracle_cluster: PrivateCluster,
    postgres_admin: DatabaseURL,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Exception | None]]:
    files = tmp_path_factory.mktemp("libpq")
    cases, on_main = _matrix(oracle_cluster, postgres_admin, files)
    empty_home = files / "empty-home"
    empty_home.mkdir()
    paths = ProjectPaths(_environment(empty_home, Case("")))

    def check(name: str, case: Case) -> Callable[[], None]:
        return lambda: _check(case, _environment(empty_home, case), paths, files / f"{name}.log")

    try:
        yield run_all({name: check(name, case) for name, case in cases.items()}, workers=2)
    finally:
        paths.close()
        for name in on_main:
            postgres.execute(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


CASES = (
    "scheme_postgresql",
    "scheme_postgres",
    "scheme_postgresql_asyncpg",
    "empty_path_with_pgdatabase",
    "no_path_with_pgdatabase",
    "bare_url_with_pg_variables",
    "database_only_with_pghost_pgport_pguser",
    "pgport_fills_a_missing_port",
    "socket_in_host_parameter",
    "socket_in_pghost",
    "socket_with_sslmode_require",
    "host_parameter_over_the_urls_host",
    "dbname_parameter",
    "dbname_parameter_over_the_path",
    "database_parameter_asyncpgs_spelling",
    "user_parameter",
    "plus_in_a_query_value",
    "user_parameter_over_the_urls_user",
    "port_parameter",
    "percent_encoded_user_and_database",
    "user_from_the_operating_system",
    "several_hosts_first_down",
    "sslmode_disable_on_tls_server",
    "sslmode_prefer_on_tls_server",
    "sslmode_require_on_tls_server",
    "no_sslmode_on_tls_server",
    "sslmode_prefer_on_plain_server",
    "sslmode_require_on_plain_server",
    "pgsslmode_require_on_plain_server",
    "pgsslmode_disable_on_tls_server",
    "url_sslmode_over_pgsslmode",
    "verify_full_with_sslrootcert",
    "verify_ca_with_pgsslrootcert",
    "passfile_with_escaped_colon_and_backslash",
    "passfile_in_home",
    "passfile_line_for_each_host",
    "passfile_one_line_for_several_hosts",
    "passfile_for_a_socket_directory",
    "connect_timeout_parameter",
    "application_name_parameter",
    "options_parameter",
    "options_parameter_with_a_bare_equals_sign",
)


@pytest.mark.parametrize("case", CASES)
def test_url_lands_where_libpq_lands(outcomes: dict[str, Exception | None], case: str) -> None:
    """psql and every path of the project reach the same (database, user, port, TLS)."""
    error = outcomes[case]
    if error is not None:
        raise error


def test_matrix_names_every_case(outcomes: dict[str, Exception | None]) -> None:
    """The parametrised names and the matrix's cases are the same set."""
    assert sorted(outcomes) == sorted(CASES)
