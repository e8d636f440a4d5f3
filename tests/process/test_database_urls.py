"""One interpretation of the database URL: the launcher, Alembic and the app all end up on the same
database (or the launcher exits 78 with one line), whatever libpq spelling the URL uses; TLS holds
wherever the URL asks for it; a hostile server costs at most --db-wait.

Several launchers run at once where each would spend seconds waiting (the URL matrix, the hostile
servers): a module fixture runs them on threads, and each case's test reports its own outcome.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import postgres
from tests.support.cluster import PASSWORD, PrivateCluster, make_certificate, started_cluster
from tests.support.fake_servers import HOSTILE, HostileServer, RecordingProxy
from tests.support.parallel import run_all
from tests.support.processes import Launcher, http_json, launcher_env
from tests.support.project import free_port
from tests.support.revisions import HEAD, add_revision
from tests.support.urls import DatabaseURL, parse_database_url, with_database

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

CLEAR_PASSWORD = "cleartext-Pa55-w0rd-7"  # the role whose server asks for it in the clear
ODD_PASSWORD = "p@ss:w/rd%25x"  # every character a URL gives a meaning to
HEAD_PASSWORD = "head"  # also a word the launcher prints: "schema at head"
SECRETS = (PASSWORD, CLEAR_PASSWORD, ODD_PASSWORD, quote(ODD_PASSWORD, safe=""))
MAIN_SOCKET_DIRECTORY = "/var/run/postgresql"
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")

HBA_RULES = (
    "hostssl all app_tls 127.0.0.1/32 scram-sha-256",
    "hostnossl all app_tls 127.0.0.1/32 reject",
    "host all app_clear 127.0.0.1/32 password",
)


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def tls_cluster(postgres_admin: DatabaseURL) -> Iterator[PrivateCluster]:
    """A private cluster with ssl = on, hostssl-only and cleartext-password roles."""
    listen = ("127.0.0.1", "::1") if _ipv6_available() else ("127.0.0.1",)
    with started_cluster(free_port(), tls=True, hba_rules=HBA_RULES, listen=listen) as cluster:
        odd = ODD_PASSWORD.replace("'", "''")
        cluster.execute(
            f"CREATE ROLE app_tls LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE ROLE app_clear LOGIN PASSWORD '{CLEAR_PASSWORD}'",
            f"CREATE ROLE app_head LOGIN PASSWORD '{HEAD_PASSWORD}'",
            f"CREATE ROLE app_odd LOGIN PASSWORD '{odd}'",
        )
        yield cluster


def create_database(cluster: PrivateCluster, name: str, owner: str = "postgres") -> DatabaseURL:
    """A fresh database on the cluster; the URL the tests read it through (the superuser's)."""
    cluster.execute(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}" OWNER {owner}')
    return cluster.socket_url(name)


def applied(url: DatabaseURL) -> list[str]:
    """The revisions in test_app.alembic_version of that database ([] when there is none)."""
    if not postgres.fetch(url, "SELECT to_regclass('test_app.alembic_version') IS NOT NULL")[0][0]:
        return []
    return [
        row[0] for row in postgres.fetch(url, "SELECT version_num FROM test_app.alembic_version")
    ]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR " in line]


def assert_no_secret(output: str) -> None:
    assert "Traceback" not in output, output
    for secret in SECRETS:
        assert secret not in output, output


def run_launcher(args: list[str], env: dict[str, str], log: Path, timeout: float = 60) -> Launcher:
    launcher = Launcher(args, env=env, log_path=log)
    launcher.wait(timeout=timeout)
    return launcher


def report(outcomes: dict[str, BaseException | None], name: str) -> None:
    error = outcomes[name]
    if error is not None:
        raise error


# --- TLS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sslmode", ["PGSSLMODE=require", "no sslmode (prefer)"])
def test_no_password_crosses_without_tls(
    tls_cluster: PrivateCluster, sslmode: str, tmp_path: Path
) -> None:
    """A server asking for a cleartext password gets it only inside TLS, launcher and Alembic."""
    name = "clear_require" if "require" in sslmode else "clear_prefer"
    database = create_database(tls_cluster, name, owner="app_clear")
    proxy = RecordingProxy(tls_cluster.port)
    url = parse_database_url(
        f"postgresql://app_clear:{CLEAR_PASSWORD}@127.0.0.1:{proxy.port}/{name}"
    )
    extra = {"PGSSLMODE": "require"} if "require" in sslmode else {}
    try:
        launcher = run_launcher(["migrate"], launcher_env(url, **extra), tmp_path / "out")
    finally:
        proxy.close()
    assert launcher.process.returncode == 0, launcher.output
    assert applied(database) == [HEAD]
    assert "(TLS, " in launcher.output
    assert proxy.recorded, "nothing went through the proxy"
    assert CLEAR_PASSWORD.encode() not in proxy.recorded
    assert_no_secret(launcher.output)


def test_the_recording_proxy_sees_a_password_sent_in_the_clear(
    tls_cluster: PrivateCluster, tmp_path: Path
) -> None:
    """The control for the test above: with sslmode=disable the proxy does see the password."""
    create_database(tls_cluster, "clear_disable", owner="app_clear")
    proxy = RecordingProxy(tls_cluster.port)
    url = parse_database_url(
        f"postgresql://app_clear:{CLEAR_PASSWORD}@127.0.0.1:{proxy.port}/clear_disable"
        "?sslmode=disable"
    )
    try:
        launcher = run_launcher(["check"], launcher_env(url), tmp_path / "out")
    finally:
        proxy.close()
    assert launcher.process.returncode == 1, launcher.output  # connected: the head pending
    assert "(no TLS, " in launcher.output
    assert CLEAR_PASSWORD.encode() in proxy.recorded


def test_verify_full_with_the_servers_certificate(
    tls_cluster: PrivateCluster, tmp_path: Path
) -> None:
    """sslmode=verify-full with the right root certificate: migrated, then at head by name."""
    database = create_database(tls_cluster, "verify_full", owner="app_tls")
    query = f"sslmode=verify-full&sslrootcert={tls_cluster.certificate}"
    for host, command, code in (("127.0.0.1", "migrate", 0), ("localhost", "check", 0)):
        url = parse_database_url(
            f"postgresql://app_tls:{PASSWORD}@{host}:{tls_cluster.port}/verify_full?{query}"
        )
        launcher = run_launcher([command], launcher_env(url), tmp_path / f"{command}.out")
        assert launcher.process.returncode == code, launcher.output
        assert "(TLS, " in launcher.output
        assert_no_secret(launcher.output)
    assert applied(database) == [HEAD]


def test_verify_full_with_a_wrong_root_certificate_is_78(
    tls_cluster: PrivateCluster, tmp_path: Path
) -> None:
    """A root certificate that did not sign the server's: exit 78, one line naming it."""
    wrong = make_certificate(tmp_path, "other-ca", common_name="someone else")
    url = parse_database_url(
        f"postgresql://app_tls:{PASSWORD}@127.0.0.1:{tls_cluster.port}/postgres"
        f"?sslmode=verify-full&sslrootcert={wrong}"
    )
    launcher = run_launcher(["check", "--db-wait", "10"], launcher_env(url), tmp_path / "out")
    assert launcher.process.returncode == 78, launcher.output
    [line] = error_lines(launcher.output)
    assert "certificate" in line
    assert_no_secret(launcher.output)


# --- The URL matrix ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    url: str  # DATABASE_URL exactly as the user writes it
    database: DatabaseURL  # where the tables, the version and the row must be (read as admin)
    env: dict[str, str] = field(default_factory=dict)
    elsewhere: DatabaseURL | None = None  # a same-named database that must stay untouched
    fails: str | None = None  # exit 78 with one line holding this


MATRIX = (
    "pgport_fills_a_url_without_port",
    "pg_variables_with_a_bare_url",
    "passfile_instead_of_a_password",
    "sslmode_require_in_the_url",
    "postgres_scheme",
    "sqlalchemy_asyncpg_scheme",
    "port_host_database_query_parameters",
    "double_slash_names_database_slash_db",
    "unix_socket_in_host_parameter",
    "unix_socket_percent_encoded_host",
    "several_hosts_read_write",
    "ipv6_literal",
    "percent_encoded_password",
)


def _matrix_cases(
    cluster: PrivateCluster, admin: DatabaseURL, files: Path
) -> tuple[dict[str, Case], list[DatabaseURL]]:
    """Each case with a database of its own; the main server's databases to drop after."""
    port, pw, on_main = cluster.port, PASSWORD, []

    def here(name: str, owner: str = "postgres") -> DatabaseURL:
        return create_database(cluster, f"m_{name}", owner)

    def main(name: str) -> DatabaseURL:
        postgres.execute(admin, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        on_main.append(with_database(admin, name))
        return on_main[-1]

    passfile = files / "pgpass"
    passfile.write_text(f"127.0.0.1:{port}:m_passfile:postgres:{pw}\n")
    passfile.chmod(0o600)
    socket_db, encoded_db = f"m_socket_{os.getpid()}", f"m_encoded_{os.getpid()}"
    odd = quote(ODD_PASSWORD, safe="")
    cases = {
        "pgport_fills_a_url_without_port": Case(
            f"postgresql://postgres:{pw}@127.0.0.1/m_pgport",
            here("pgport"),
            {"PGPORT": str(port)},
            elsewhere=main("m_pgport"),
        ),
        "pg_variables_with_a_bare_url": Case(
            "postgresql://",
            here("pgvars"),
            {
                "PGHOST": "127.0.0.1",
                "PGPORT": str(port),
                "PGUSER": "postgres",
                "PGPASSWORD": pw,
                "PGDATABASE": "m_pgvars",
            },
        ),
        "passfile_instead_of_a_password": Case(
            f"postgresql://postgres@127.0.0.1:{port}/m_passfile",
            here("passfile"),
            {"PGPASSFILE": str(passfile)},
        ),
        "sslmode_require_in_the_url": Case(
            f"postgresql://app_tls:{pw}@127.0.0.1:{port}/m_require?sslmode=require",
            here("require", owner="app_tls"),
        ),
        "postgres_scheme": Case(f"postgres://postgres:{pw}@127.0.0.1:{port}/m_pg", here("pg")),
        "sqlalchemy_asyncpg_scheme": Case(
            f"postgresql+asyncpg://postgres:{pw}@127.0.0.1:{port}/m_sqla", here("sqla")
        ),
        "port_host_database_query_parameters": Case(
            f"postgresql://postgres:{pw}@?host=127.0.0.1&port={port}&database=m_query",
            here("query"),
        ),
        "double_slash_names_database_slash_db": Case(
            f"postgresql://postgres:{pw}@127.0.0.1:{port}//m_slash",
            here("slash"),
            fails='database "/m_slash" does not exist',
        ),
        "unix_socket_in_host_parameter": Case(
            f"postgresql:///{socket_db}?host={MAIN_SOCKET_DIRECTORY}",
            main(socket_db),
            {"PGUSER": "postgres"},
        ),
        "unix_socket_percent_encoded_host": Case(
            f"postgresql://postgres@{quote(MAIN_SOCKET_DIRECTORY, safe='')}/{encoded_db}",
            main(encoded_db),
        ),
        "several_hosts_read_write": Case(
            f"postgresql://postgres:{pw}@127.0.0.1:{free_port()},127.0.0.1:{port}/m_hosts"
            "?target_session_attrs=read-write",
            here("hosts"),
        ),
        "ipv6_literal": Case(f"postgresql://postgres:{pw}@[::1]:{port}/m_ipv6", here("ipv6")),
        "percent_encoded_password": Case(
            f"postgresql://app_odd:{odd}@127.0.0.1:{port}/m_odd", here("odd", owner="app_odd")
        ),
    }
    return cases, on_main


def _serve_case(case: Case, log: Path, email: str) -> None:
    port = free_port()
    env = {**launcher_env(None, **case.env), "DATABASE_URL": case.url}
    launcher = Launcher(["serve", "--port", str(port), "--db-wait", "30"], env=env, log_path=log)
    try:
        if case.fails is not None:
            assert launcher.wait(timeout=60) == 78, launcher.output
            [line] = error_lines(launcher.output)
            assert case.fails in line
            assert applied(case.database) == []
            return
        assert launcher.wait_http(port, "/readyz", timeout=60) == 200, launcher.output
        body = json.dumps({"name": "Matrix", "email": email}).encode()
        status, answer = http_json(port, "POST", "/users", body)
        assert status == 201, answer
    finally:
        launcher.stop()
    # Alembic's version and the app's row are in the one database the URL means.
    assert applied(case.database) == [HEAD], launcher.output
    assert postgres.fetch(case.database, "SELECT email FROM test_app.users") == [(email,)]
    if case.elsewhere is not None:
        assert applied(case.elsewhere) == [], "the tables went to the main server"
    # The launcher's own session was there too, as the server itself reports it.
    where = rf"connected to postgresql://[^\n]*?/{case.database.database} \("
    assert re.search(where, launcher.output), launcher.output
    assert_no_secret(launcher.output)


@pytest.fixture(scope="module")
def matrix_outcomes(
    tls_cluster: PrivateCluster,
    postgres_admin: DatabaseURL,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, BaseException | None]]:
    files = tmp_path_factory.mktemp("matrix")
    cases, on_main = _matrix_cases(tls_cluster, postgres_admin, files)
    if "::1" not in tls_cluster.listen:
        del cases["ipv6_literal"]
    jobs = {
        name: (lambda c=case, n=name: _serve_case(c, files / f"{n}.log", f"{n}@example.com"))
        for name, case in cases.items()
    }
    try:
        yield run_all(jobs, workers=4)
    finally:
        for url in on_main:
            postgres.execute(
                postgres_admin, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'
            )


@pytest.mark.parametrize("case", MATRIX)
def test_url_means_one_database_everywhere(
    matrix_outcomes: dict[str, BaseException | None], case: str
) -> None:
    """The launcher, Alembic and the app use the one database this URL means (or exit 78)."""
    if case not in matrix_outcomes:
        pytest.skip("the server does not listen on ::1 (no IPv6 loopback on this machine)")
    report(matrix_outcomes, case)


def test_bogus_sslmode_is_78_at_once(tmp_path: Path) -> None:
    """An sslmode asyncpg does not know: exit 78, one line, within a second."""
    url = parse_database_url(f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/db?sslmode=bogus")
    started = time.monotonic()
    launcher = run_launcher(["migrate", "--db-wait", "30"], launcher_env(url), tmp_path / "out")
    elapsed = time.monotonic() - started
    assert launcher.process.returncode == 78, launcher.output
    [line] = error_lines(launcher.output)
    assert "sslmode" in line
    assert elapsed < 1.0, launcher.output
    assert_no_secret(launcher.output)


# --- Hostile servers -----------------------------------------------------------------------


# The ones that keep the launcher waiting (a costly hash is refused before it starts).
HOLDS_THE_WAIT = [name for name in HOSTILE if name != "scram_iterations_2147483647"]


def test_a_costly_password_hash_is_refused_at_once(tmp_path: Path) -> None:
    """A server asking for 2^31 - 1 rounds of SCRAM hashing: exit 78 within a second, naming
    the count, no core kept busy."""
    server = HostileServer(HOSTILE["scram_iterations_2147483647"])
    url = parse_database_url(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{server.port}/app")
    started = time.monotonic()
    try:
        launcher = run_launcher(["check", "--db-wait", "30"], launcher_env(url), tmp_path / "o")
    finally:
        server.close()
    assert launcher.process.returncode == 78, launcher.output
    assert time.monotonic() - started < 2.0, launcher.output
    [line] = error_lines(launcher.output)
    assert "2,147,483,647 rounds of SCRAM password hashing" in line
    assert_no_secret(launcher.output)


def _against_hostile(behaviour: str, log: Path, *, terminate: bool) -> None:
    server = HostileServer(HOSTILE[behaviour])
    url = parse_database_url(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{server.port}/app")
    started = time.monotonic()
    launcher = Launcher(["check", "--db-wait", "3"], env=launcher_env(url), log_path=log)
    try:
        if terminate:
            assert server.connected.wait(5), launcher.output
            time.sleep(0.3)
            launcher.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert launcher.wait(timeout=10) == 143, launcher.output
            assert time.monotonic() - signalled < 1.0, launcher.output
        else:
            code = launcher.wait(timeout=20)
            assert code in (69, 78), launcher.output
            assert time.monotonic() - started < 3 + 2, launcher.output
            assert len(error_lines(launcher.output)) == 1, launcher.output
        assert_no_secret(launcher.output)
    finally:
        server.close()
        launcher.stop()


@pytest.fixture(scope="module")
def hostile_outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, BaseException | None]:
    logs = tmp_path_factory.mktemp("hostile")
    waits = {
        f"{name}-wait": (lambda n=name: _against_hostile(n, logs / n, terminate=False))
        for name in HOSTILE
    }
    signalled = {
        f"{name}-sigterm": (lambda n=name: _against_hostile(n, logs / f"{n}-term", terminate=True))
        for name in HOLDS_THE_WAIT
    }
    return {**run_all(waits, workers=len(waits)), **run_all(signalled, workers=len(signalled))}


@pytest.mark.parametrize("behaviour", list(HOSTILE))
def test_hostile_server_costs_at_most_the_wait(
    hostile_outcomes: dict[str, BaseException | None], behaviour: str
) -> None:
    """A hostile server: exit 69 or 78 within --db-wait + 2 s, one line, no traceback."""
    report(hostile_outcomes, f"{behaviour}-wait")


@pytest.mark.parametrize("behaviour", HOLDS_THE_WAIT)
def test_sigterm_during_a_hostile_wait_is_prompt(
    hostile_outcomes: dict[str, BaseException | None], behaviour: str
) -> None:
    """SIGTERM while a hostile server holds the wait: exit 143 within a second."""
    report(hostile_outcomes, f"{behaviour}-sigterm")


# --- --db-wait and redaction ---------------------------------------------------------------


def test_db_wait_is_a_real_limit(tmp_path: Path) -> None:
    """A refusing port with --db-wait 3: exit 69 after about 3 s, stating the real time."""
    url = parse_database_url(f"postgresql://postgres@127.0.0.1:{free_port()}/app")
    started = time.monotonic()
    launcher = run_launcher(["check", "--db-wait", "3"], launcher_env(url), tmp_path / "out")
    elapsed = time.monotonic() - started
    assert launcher.process.returncode == 69, launcher.output
    assert 2.9 <= elapsed < 4.5, launcher.output
    [line] = error_lines(launcher.output)
    stated = re.search(r"database unreachable for ([0-9.]+)s", line)
    assert stated is not None, line
    assert 2.9 <= float(stated.group(1)) <= elapsed


def test_password_head_is_redacted_and_head_is_not(
    tls_cluster: PrivateCluster, tmp_path: Path
) -> None:
    """Password "head": every URL shows ***, and "schema at head" is printed intact."""
    create_database(tls_cluster, "redaction", owner="app_head")
    url = parse_database_url(
        f"postgresql://app_head:{HEAD_PASSWORD}@127.0.0.1:{tls_cluster.port}/redaction"
    )
    output = ""
    for command in ("migrate", "check"):
        launcher = run_launcher([command], launcher_env(url), tmp_path / f"{command}.out")
        assert launcher.process.returncode == 0, launcher.output
        output += launcher.output
    assert "migrations applied: schema at head" in output
    assert f"schema at head ({HEAD})" in output
    urls = URL_IN_TEXT.findall(output)
    assert any("app_head:***@" in shown for shown in urls), output
    for shown in urls:
        assert f":{HEAD_PASSWORD}@" not in shown, shown


# --- check --lint through every URL form ------------------------------------------------------


def _lint_answer(output: str) -> tuple[str, ...]:
    """What `check --lint` concluded: its finding and pending lines, without URLs or times."""
    kept = []
    for line in output.splitlines():
        message = line.split("] ", 1)[-1]
        if "create-index-not-concurrently" in message or message.startswith(
            ("WARNING pending", "INFO pending", "ERROR ")
        ):
            kept.append(re.sub(r"\([^)]*://[^)]*\)", "(URL)", message))
    return tuple(kept)


def test_every_url_form_gives_the_same_check_lint_answer(
    postgres_url: DatabaseURL, tls_cluster: PrivateCluster, tmp_path: Path, project_copy: Path
) -> None:
    """docs/launcher.md's URL forms, each through `check --lint` on a database holding one
    unsafe pending revision: every one exits 5 with the same finding, and applies nothing."""
    local = postgres_url  # dropped by the fixture, whatever the test's outcome
    create_database(tls_cluster, "lint_forms", owner="app_tls")
    tls = f"app_tls:{PASSWORD}@{{host}}:{tls_cluster.port}/lint_forms"
    name, port = local.database, 5432
    forms = {
        "postgresql://": (f"postgresql://postgres@127.0.0.1:{port}/{name}", {}),
        "postgres://": (f"postgres://postgres@127.0.0.1:{port}/{name}", {}),
        "postgresql+asyncpg://": (f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{name}", {}),
        "sslmode=disable": (f"postgresql://postgres@127.0.0.1:{port}/{name}?sslmode=disable", {}),
        "PG* variables": (
            "postgresql:///",
            {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres", "PGDATABASE": name},
        ),
        "Unix socket": (f"postgresql:///{name}?host={MAIN_SOCKET_DIRECTORY}", {}),
        "several hosts": (
            f"postgresql://postgres@127.0.0.1:{free_port()},127.0.0.1:{port}/{name}",
            {},
        ),
        "sslmode=require": (f"postgres://{tls.format(host='127.0.0.1')}?sslmode=require", {}),
        "verify-full": (
            f"postgresql://{tls.format(host='localhost')}"
            f"?sslmode=verify-full&sslrootcert={tls_cluster.certificate}",
            {},
        ),
    }
    for database in ("postgresql://", "sslmode=require"):  # both servers at head
        url, extra = forms[database]
        env = launcher_env(parse_database_url(url), **extra)
        setup = Launcher(["migrate"], env=env, root=project_copy, log_path=tmp_path / "setup")
        assert setup.wait(timeout=60) == 0, setup.output
    add_revision(project_copy, "0002", HEAD, 'op.create_index("ix_name", "users", ["name"])')

    answers = {}
    for form, (url, extra) in forms.items():
        env = launcher_env(parse_database_url(url), **extra)
        log = tmp_path / f"{len(answers)}.out"
        launcher = Launcher(["check", "--lint"], env=env, root=project_copy, log_path=log)
        assert launcher.wait(timeout=60) == 5, f"{form}:\n{launcher.output}"
        answers[form] = _lint_answer(launcher.output)
        assert_no_secret(launcher.output)
    assert any("create-index-not-concurrently" in line for line in answers["postgresql://"])
    assert {
        form: answer for form, answer in answers.items() if answer != answers["postgresql://"]
    } == {}
    assert applied(local) == [HEAD]
    assert applied(tls_cluster.socket_url("lint_forms")) == [HEAD]


def test_postgres_scheme_with_strict_migrates_a_safe_revision(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """Heroku's `postgres://` with `--lint strict`: the analysis runs in the child and a safe
    pending revision is applied."""
    url = parse_database_url(postgres_url.url.replace("postgresql://", "postgres://", 1))
    add_revision(project_copy, "0002", HEAD, 'op.add_column("users", sa.Column("note", sa.Text))')
    launcher = Launcher(
        ["migrate", "--lint", "strict"],
        env=launcher_env(url),
        root=project_copy,
        log_path=tmp_path / "o",
    )
    assert launcher.wait(timeout=60) == 0, launcher.output
    assert "migration safety analysis: no finding" in launcher.output
    assert applied(postgres_url) == ["0002"]
