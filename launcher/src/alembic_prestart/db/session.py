"""The launcher's database session: asyncpg, driven from the launcher's synchronous code.

asyncpg is the one interpreter of a PostgreSQL URL (libpq's environment variables, passfile,
sslmode and sslrootcert, Unix sockets, several hosts) and the one speaker of the protocol, here
as in the Alembic child and the app. Its event loop runs on a thread of its own so that the
launcher's main thread keeps a hard deadline on every exchange and answers signals at once,
whatever the server does: a server that drips bytes costs at most the deadline, and one that
asks for minutes of password hashing is refused before any (db/scram.py). A loop that is still
busy when its deadline passes is abandoned with its thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from alembic_prestart.db.scram import bound_password_hashing, refused_iterations
from alembic_prestart.db.url import DatabaseURL
from alembic_prestart.errors import EXIT_CONFIG, SupervisorError

T = TypeVar("T")

QUERY_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 2.0
_SLICE_SECONDS = 0.05


class RetryableError(Exception):
    """Waiting may help: the server is not (yet) reachable, or did not answer in time."""


class Interrupted(Exception):
    """A signal arrived while an exchange was under way."""


class _LoopThread:
    """An asyncio loop on a daemon thread; the caller waits for each coroutine with a deadline.

    A thread abandoned at its deadline may still be busy in a C call the loop cannot interrupt:
    the next connect waits for it instead of starting another, so the launcher never burns more
    than one core on a server that keeps it there.
    """

    abandoned: ClassVar[list[threading.Thread]] = []

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="alembic-prestart-database", daemon=True
        )
        self._thread.start()

    @classmethod
    def wait_for_abandoned(cls, timeout: float, should_stop: Callable[[], bool]) -> bool:
        """True once no abandoned thread is still running (within `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        cls.abandoned = [thread for thread in cls.abandoned if thread.is_alive()]
        while cls.abandoned:
            if should_stop():
                raise Interrupted
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            cls.abandoned[0].join(min(_SLICE_SECONDS, remaining))
            cls.abandoned = [thread for thread in cls.abandoned if thread.is_alive()]
        return True

    def run(
        self,
        coroutine: Coroutine[Any, Any, T],
        *,
        timeout: float,
        should_stop: Callable[[], bool],
    ) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return future.result(
                    timeout=max(0.0, min(_SLICE_SECONDS, deadline - time.monotonic()))
                )
            except concurrent.futures.TimeoutError:
                pass
            if should_stop():
                future.cancel()
                raise Interrupted
            if time.monotonic() >= deadline:
                future.cancel()
                raise TimeoutError

    def stop(self) -> None:
        # A loop stuck in a C call never sees this; its daemon thread dies with the process.
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread.is_alive():
            _LoopThread.abandoned.append(self._thread)


class PostgresSession:
    """One asyncpg connection owned by the launcher (the wait, the version read, the lock)."""

    def __init__(self, thread: _LoopThread, connection: Any, should_stop: Callable[[], bool]):
        self._thread = thread
        self._connection = connection
        self._should_stop = should_stop
        self.backend_pid: int = connection.get_server_pid()
        self._timed_out = False  # a query went unanswered: the server gets no goodbye to ignore

    @classmethod
    def connect(
        cls,
        url: DatabaseURL,
        *,
        timeout: float,
        application_name: str,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> PostgresSession:
        """Connect within `timeout` seconds, all of it (TLS, authentication), or raise
        RetryableError, SupervisorError (exit 78: waiting cannot help) or Interrupted."""
        import asyncpg  # only PostgreSQL needs it

        bound_password_hashing()
        if not _LoopThread.wait_for_abandoned(timeout, should_stop):
            raise RetryableError(
                "the previous connection attempt is still busy in a call that cannot be interrupted"
            )
        thread = _LoopThread()
        connecting = asyncpg.connect(
            url.asyncpg_dsn(),
            timeout=timeout,
            server_settings={"application_name": application_name[:63]},
        )
        try:
            connection = thread.run(connecting, timeout=timeout + 0.2, should_stop=should_stop)
        except Interrupted:
            thread.stop()
            raise
        except TimeoutError:
            thread.stop()
            raise RetryableError("connection timed out") from None
        except Exception as error:
            thread.stop()
            raise classify_connect_error(error, url) from None
        return cls(thread, connection, should_stop)

    def fetch(self, query: str, *args: Any, timeout: float = QUERY_TIMEOUT_SECONDS) -> list[Any]:
        """The rows of one query; RetryableError when the connection is lost or times out."""
        rows = self._call(self._connection.fetch(query, *args, timeout=timeout), timeout)
        return [tuple(row) for row in rows]

    def fetchval(self, query: str, *args: Any, timeout: float = QUERY_TIMEOUT_SECONDS) -> Any:
        rows = self.fetch(query, *args, timeout=timeout)
        return rows[0][0] if rows else None

    def versions(
        self, schema: str, *, timeout: float = QUERY_TIMEOUT_SECONDS
    ) -> tuple[str, ...] | None:
        """The revisions in schema.alembic_version, sorted; None when there is no such table."""
        from alembic_prestart.db.versions import VersionTableError, read_postgres_versions

        try:
            return self._call(read_postgres_versions(self._connection, schema), timeout)
        except VersionTableError as error:
            raise SupervisorError(first_line(error), EXIT_CONFIG) from None

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """One exchange on the session's loop, within `timeout` seconds."""
        try:
            return self._thread.run(coroutine, timeout=timeout + 0.2, should_stop=self._should_stop)
        except TimeoutError:
            self._timed_out = True
            raise RetryableError(f"the database did not answer within {timeout:.3g}s") from None
        except (OSError, ConnectionError) as error:
            raise RetryableError(error_text(error)) from None
        except Exception as error:
            if _is_connection_lost(error):
                raise RetryableError(error_text(error)) from None
            raise

    def connected_to(self, *, timeout: float = QUERY_TIMEOUT_SECONDS) -> str:
        """Where this session really is, as the server reports it: no password, ever."""
        row = self.fetch(
            "SELECT current_user, current_database(), inet_server_addr()::text, "
            "inet_server_port(), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
            timeout=timeout,
        )[0]
        user, database, address, port, tls = row
        host = address.split("/")[0] if address else None
        if host and ":" in host:
            host = f"[{host}]"  # IPv6
        # No address: a Unix socket, shown as psql shows it.
        where = f"{host}:{port}" if host else "[local]"
        if not host:
            return f"postgresql://{user}@{where}/{database} (Unix socket)"
        # The server's own address: behind a proxy or a port mapping it is not the URL's.
        tls_note = "TLS" if tls else "no TLS"
        return f"postgresql://{user}@{where}/{database} ({tls_note}, the server's own address)"

    def close(self) -> None:
        """Say goodbye, or drop the connection: the server ends the session either way."""
        try:
            if not self._timed_out and self._say_goodbye():
                return
            # On the loop's own thread: asyncio transports are not thread-safe.
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._thread.loop.call_soon_threadsafe(self._connection.terminate)
        finally:
            self._thread.stop()

    def _say_goodbye(self) -> bool:
        try:
            # A signal cuts the courtesy short: a server that does not answer the goodbye must
            # not hold up the exit.
            self._thread.run(
                self._connection.close(timeout=CLOSE_TIMEOUT_SECONDS),
                timeout=CLOSE_TIMEOUT_SECONDS + 0.2,
                should_stop=self._should_stop,
            )
        except Exception:
            return False
        return True


def classify_connect_error(error: BaseException, url: DatabaseURL) -> Exception:
    """What a failed connect means: RetryableError if waiting may help, else exit 78.

    Every text that came from the driver is scrubbed of any fragment of the password: a URL
    that holds an unencoded / ? # in its password is misread, and the driver's error quotes
    the pieces it misread."""
    import asyncpg

    shown = url.display()

    def text() -> str:
        return url.scrub(first_line(error))

    def config(message: str) -> SupervisorError:
        return SupervisorError(f"configuration error: {message} ({shown})", EXIT_CONFIG)

    if (refused := refused_iterations(error)) is not None:
        return config(str(refused))
    if isinstance(
        error, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return config(f"authentication failed: {text()}")
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return config(text())
    if isinstance(error, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
        return RetryableError(text())
    if isinstance(error, asyncpg.ClientConfigurationError | ValueError | TypeError | OverflowError):
        # asyncpg's own reading of the URL rejected it (a bad sslmode, port or parameter). Its
        # text may quote a misread piece of the password: only a scrubbed version is shown.
        return config(
            f"the database URL was rejected: {text()} (percent-encode the reserved characters "
            "of a password)"
        )
    if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
        # A file the URL or libpq's variables name (sslrootcert, sslcert, passfile): waiting
        # will not make it appear.
        return config(f"cannot read {error.filename or 'a file the URL names'}: {error.strerror}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return config(f"the server's TLS certificate was not accepted: {error.verify_message}")
    if isinstance(error, asyncpg.PostgresError):  # e.g. an unknown server setting in the URL
        return config(f"the database refused the connection: {text()}")
    if isinstance(error, ConnectionError) and "rejected SSL" in str(error):
        if requires_tls(url):
            return config("the server does not offer TLS, which sslmode requires")
        # sslmode prefer (the default) only asks: a PostgreSQL server answers yes or no, and
        # anything else is a peer that does not speak PostgreSQL's protocol at all.
        return RetryableError("the peer at that address is not a PostgreSQL server")
    if isinstance(error, socket.gaierror):
        return RetryableError(f"cannot resolve the host ({error.strerror})")
    # Refused, reset, timed out, or a reply no PostgreSQL server would send: retried until
    # --db-wait is spent, then exit 69 naming it.
    return RetryableError(url.scrub(error_text(error)))


def requires_tls(url: DatabaseURL) -> bool:
    """Whether the URL (or PGSSLMODE) makes TLS a must, as libpq reads sslmode."""
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url.url).query)
    mode = (query.get("sslmode") or [os.environ.get("PGSSLMODE", "prefer")])[0]
    return mode in ("require", "verify-ca", "verify-full")


def _is_connection_lost(error: BaseException) -> bool:
    import asyncpg

    return isinstance(
        error, asyncpg.ConnectionDoesNotExistError | asyncpg.PostgresConnectionError
    ) or (type(error).__name__ == "InterfaceError" and "closed" in str(error))


def error_text(error: BaseException) -> str:
    if isinstance(error, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return "connection timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.errno is not None:
        return os.strerror(error.errno).lower()
    text = first_line(error)
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def read_sqlite_versions(path: Path) -> tuple[str, ...] | None:
    """The launcher's read of a SQLite version table: exit 78 when it cannot be read."""
    from alembic_prestart.db.versions import VersionTableError
    from alembic_prestart.db.versions import read_sqlite_versions as read

    try:
        return read(path)
    except VersionTableError as error:
        raise SupervisorError(str(error), EXIT_CONFIG) from None
