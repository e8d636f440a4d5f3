"""What the benchmarks share: servers run as real processes and timed, /healthz polling, and
the printed tables. The project copy, the clean environment, free ports and throwaway databases
come from tests.support, which the tests use too; uvicorn's command line from the launcher.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from alembic_prestart.db.url import redact_url

from tests.support import postgres
from tests.support.project import clean_environment, copy_project, free_port
from tests.support.urls import PROJECT_ROOT, parse_database_url
from tests.support.urls import with_database as with_db

# The interpreter running the benchmark runs everything else: run it with .venv/bin/python.
PYTHON = sys.executable
HOST = "127.0.0.1"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POLL_SECONDS = 0.005
STOP_GRACE_SECONDS = 10.0


class BenchError(Exception):
    """A benchmark that cannot go on: printed as one line by main()."""


# --- command line -------------------------------------------------------------------------


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose --help shows the module docstring, with the shared --admin-url."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL)
    parser.add_argument(
        "--admin-url",
        default=default,
        help="PostgreSQL URL allowed to CREATE/DROP DATABASE; the throwaway databases are made "
        f"on that server (default: $BENCH_DATABASE_URL or {redact_url(DEFAULT_ADMIN_URL)}; "
        f"now {redact_url(default).replace('%', '%%')})",
    )
    return parser


def run_main(body: Callable[[], int]) -> None:
    """Run a benchmark's body; an expected failure is one line on stderr and exit 1."""
    try:
        sys.exit(body())
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


# --- databases ----------------------------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    return parse_database_url(url).asyncpg_dsn()


def with_database(url: str, name: str) -> str:
    return with_db(parse_database_url(url), name).url


def execute(url: str, *statements: str) -> None:
    postgres.execute(parse_database_url(url), *statements)


def fetch(url: str, query: str) -> list[tuple[object, ...]]:
    return postgres.fetch(parse_database_url(url), query)


def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """A new database (a copy of `template` if given: far faster than migrating again)."""
    try:
        url = postgres.create_database(parse_database_url(admin_url), name=name, template=template)
    except Exception as error:  # unreachable, refused, no permission: one clear line
        raise BenchError(
            f"cannot create database {name} at {redact_url(admin_url)}: "
            f"{type(error).__name__}: {error}"
        ) from None
    return url.url


def drop_database(admin_url: str, name: str) -> None:
    admin = parse_database_url(admin_url)
    postgres.drop_database(admin, with_db(admin, name))


def database_name(label: str) -> str:
    return f"bench_{label}_{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def throwaway_database(admin_url: str, label: str, *, template: str | None = None) -> Iterator[str]:
    """Create a database for the duration of the block, then drop it whatever happened."""
    name = database_name(label)
    url = create_database(admin_url, name, template=template)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


def versions(url: str, schema: str = "test_app") -> list[str]:
    """The revisions in the version table (empty if there is none yet)."""
    from tests.support.state import applied_versions

    return applied_versions(parse_database_url(url), schema)


# --- processes ----------------------------------------------------------------------------


def server_environment(database_url: str) -> dict[str, str]:
    """The same environment for every variant; the URL travels here, never on a command line.
    Without .pyc files every start would compile the project again: PYTHONDONTWRITEBYTECODE
    goes too."""
    env = clean_environment(DATABASE_URL=database_url)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def alembic(
    root: Path, database_url: str, *args: str, extra_env: dict[str, str] | None = None
) -> None:
    """`alembic -c <root>/alembic.ini ARGS` for setting a database up (never timed)."""
    result = subprocess.run(
        [PYTHON, "-m", "alembic", "-c", str(root / "alembic.ini"), *args],
        cwd=root,
        env={**server_environment(database_url), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise BenchError(f"alembic {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


# The floor of any launcher that asks the database through asyncpg: a bare interpreter that
# imports asyncpg, connects, runs one query (bench/startup.py's (f), bench/pre_exec.py's).
FLOOR_SCRIPT = (
    "import asyncio, os, asyncpg\n"
    "async def main():\n"
    "    connection = await asyncpg.connect(os.environ['DATABASE_URL'])\n"
    "    await connection.fetchval('SELECT 1')\n"
    "    await connection.close()\n"
    "asyncio.run(main())\n"
)


def run_floor(database_url: str, *, under: Sequence[str] = ()) -> float:
    """Seconds the floor takes on `database_url`, run under `under` (say, valgrind) if given."""
    started = time.perf_counter()
    subprocess.run(
        [*under, PYTHON, "-c", FLOOR_SCRIPT],
        env=server_environment(database_url),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def code_head(root: Path) -> str:
    """The head revision of a project, as Alembic reads it (through its alembic.ini)."""
    from tests.support.revisions import code_head as head_of

    return head_of(root)


def project_copy(destination: Path) -> Path:
    """A private copy of the project, so a benchmark can add a revision file of its own."""
    return copy_project(destination)


def uvicorn_argv(app: str, root: Path, port: int, extra: Sequence[str] = ()) -> list[str]:
    """uvicorn's command line, built by the launcher's own function."""
    from alembic_prestart.process.serve import uvicorn_argv as launcher_uvicorn_argv

    return launcher_uvicorn_argv(
        python=PYTHON, app=app, host=HOST, port=port, workers=1, app_dir=root, extra=extra
    )


def plain_uvicorn_argv(app: str, root: Path, port: int, extra: Sequence[str] = ()) -> list[str]:
    """uvicorn's own command line, as it is run without the launcher."""
    argv = [PYTHON, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
    return [*argv, "--workers", "1", "--app-dir", str(root), *extra]


def supervisor_argv(root: Path, port: int, extra_uvicorn: Sequence[str] = ()) -> list[str]:
    argv = [PYTHON, str(root / "supervisor.py"), "--port", str(port)]
    return [*argv, "--", *extra_uvicorn] if extra_uvicorn else argv


def shell_chain_argv(root: Path, port: int) -> list[str]:
    """What people write without a launcher: migrate, and only if that worked, serve."""
    alembic_script = Path(PYTHON).parent / "alembic"
    ini = root / "alembic.ini"
    serve = shlex.join(plain_uvicorn_argv("service.main:app", root, port))
    migrate = shlex.join([str(alembic_script), "-c", str(ini), "upgrade", "head"])
    return ["sh", "-c", f"{migrate} && exec {serve}"]


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        # As uvicorn binds: with SO_REUSEADDR, so TIME_WAIT leftovers do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def wait_port_free(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() > deadline:
            raise BenchError(f"port {port} still taken {timeout:g}s after its server stopped")
        time.sleep(0.01)


def http_status(port: int, path: str = "/healthz", timeout: float = 1.0) -> int | None:
    """The status of one GET (the standard library's HTTP client), or None if nothing answers."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class Server:
    """One launched process (a launcher, uvicorn, a shell chain) serving on one port.

    It gets a session of its own so that stop() can reach everything it started (the shell's
    alembic, the launcher's migration child) with one killpg.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: dict[str, str],
        cwd: Path = PROJECT_ROOT,
    ) -> None:
        self.name = name
        self.port = port
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        # The clock starts right before the fork: process creation is part of start-up.
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output_tail(self, lines: int = 30) -> str:
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> BenchError:
        return BenchError(f"{self.name} {what}; its last output:\n{self.output_tail()}")

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, a grace period, then SIGKILL for the whole group; wait for the port."""
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_GRACE_SECONDS)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()
        wait_port_free(self.port)


def wait_until_serving(servers: Sequence[Server], timeout: float) -> list[float]:
    """Poll each server's /healthz every POLL_SECONDS; seconds from its launch to its first
    200, in the order given. A server that exits or overruns `timeout` is an error."""
    ready: dict[int, float] = {}
    while len(ready) < len(servers):
        for index, server in enumerate(servers):
            if index in ready:
                continue
            if http_status(server.port) == 200:
                ready[index] = time.perf_counter() - server.started
            elif server.process.poll() is not None:
                raise server.failure(f"exited {server.process.returncode} before serving")
            elif time.perf_counter() - server.started > timeout:
                raise server.failure(f"did not serve /healthz within {timeout:g}s")
        if len(ready) < len(servers):
            time.sleep(POLL_SECONDS)
    return [ready[index] for index in range(len(servers))]


def stop_all(servers: Sequence[Server]) -> None:
    # Signal them all first: they shut down in parallel, not one grace period after another.
    for server in servers:
        server.terminate()
    for server in servers:
        server.stop()


# --- reporting ----------------------------------------------------------------------------


def summary(samples: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(samples), min(samples), max(samples)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, left: int = 1) -> None:
    """A plain aligned table: the first `left` columns left-aligned (names), the rest right."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * width for width in widths))
    for row in cells[1:]:
        print(line(row))


def machine_line(when: str) -> str:
    """Printed before and after a run: other work on the machine skews every figure."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"[{when}] python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load}"


def ratio_line(name: str, value: float, *, target: str, met: bool) -> str:
    return f"{name:<34} {value:6.3f}   target {target:<8} {'met' if met else 'MISSED'}"


def rotated(items: Sequence, by: int) -> list:
    """Round r starts with a different variant, so no variant always runs first or last."""
    by %= len(items)
    return [*items[by:], *items[:by]]
