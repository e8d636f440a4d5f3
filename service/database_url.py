"""Database URL handling shared by the service, the migrations and the launcher.

Standard library only: the launcher imports this before it execs uvicorn and must stay light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "app.db"
DEFAULT_SCHEMA = "test_app"

# Hosts hand out postgres:// and postgresql://; SQLAlchemy needs the async driver named.
_SCHEME_ALIASES = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class DatabaseURLError(ValueError):
    """A database URL or schema that cannot be used; the message never holds a password."""


@dataclass(frozen=True)
class DatabaseURL:
    """A normalised database URL: the async driver named, SQLite paths made absolute."""

    url: str

    @property
    def _parts(self) -> SplitResult:
        return urlsplit(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    @property
    def sqlite_path(self) -> Path:
        """The database file of a SQLite URL."""
        return Path(unquote(self._parts.path[1:]))

    @property
    def host(self) -> str:
        return self._parts.hostname or "localhost"

    @property
    def port(self) -> int:
        return self._parts.port or 5432

    @property
    def username(self) -> str | None:
        return unquote(self._parts.username) if self._parts.username else None

    @property
    def password(self) -> str | None:
        return unquote(self._parts.password) if self._parts.password else None

    @property
    def database(self) -> str:
        return unquote(self._parts.path.lstrip("/"))

    def redacted(self) -> str:
        """The URL with any password replaced by ***, safe for logs and errors."""
        parts = self._parts
        if parts.password is None:
            return self.url
        user = parts.username or ""
        host = parts.hostname or ""
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    def with_database(self, name: str) -> DatabaseURL:
        """The same server and credentials, another database (PostgreSQL only)."""
        return DatabaseURL(urlunsplit(self._parts._replace(path="/" + name)))

    def asyncpg_dsn(self) -> str:
        """The URL in the form asyncpg.connect() takes."""
        return urlunsplit(self._parts._replace(scheme="postgresql"))


def default_url() -> str:
    return f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"


def parse_database_url(raw: str | None) -> DatabaseURL:
    """Normalise a user-supplied URL, or raise DatabaseURLError with a password-free message."""
    if raw is None or not raw.strip():
        return DatabaseURL(default_url())
    raw = raw.strip()
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise DatabaseURLError("malformed database URL (it could not be parsed)") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEME_ALIASES:
        shown = scheme or "(none)"
        raise DatabaseURLError(
            f"unsupported database URL scheme {shown!r}: use postgres://, postgresql:// "
            "or sqlite:///path"
        )
    parts = parts._replace(scheme=_SCHEME_ALIASES[scheme])
    if scheme.startswith("sqlite"):
        # Built by hand: urlunsplit() would fold the four slashes of an absolute path.
        query = f"?{parts.query}" if parts.query else ""
        return DatabaseURL(f"{parts.scheme}:///{_absolute_sqlite_path(parts)}{query}")
    if not parts.hostname and "host=" not in parts.query:
        raise DatabaseURLError("malformed PostgreSQL URL: no host")
    if not parts.path.strip("/"):
        raise DatabaseURLError("malformed PostgreSQL URL: no database name")
    return DatabaseURL(urlunsplit(parts._replace(netloc=_encoded_netloc(parts))))


def _encoded_netloc(parts: SplitResult) -> str:
    """user:password@host:port with the credentials percent-encoded once.

    A password holding a raw @ or : (postgres://app:p@ss@db/x) is read one way by asyncpg and
    another by SQLAlchemy; encoded, every parser agrees.
    """
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host += f":{parts.port}"
    if parts.username is None and parts.password is None:
        return host
    credentials = quote(unquote(parts.username or ""), safe="")
    if parts.password is not None:
        credentials += ":" + quote(unquote(parts.password), safe="")
    return f"{credentials}@{host}"


def _absolute_sqlite_path(parts: SplitResult) -> str:
    """sqlite:///rel/x.db resolves from the project root, never from the cwd."""
    if parts.netloc:
        raise DatabaseURLError(
            "malformed SQLite URL: use sqlite:///relative/path or sqlite:////abs"
        )
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    if not path or path == ":memory:":
        raise DatabaseURLError("SQLite needs a database file, not an in-memory database")
    return str((PROJECT_ROOT / path).resolve())


def validate_schema(schema: str) -> str:
    """A PostgreSQL schema name we can safely quote into DDL and search_path."""
    if not _IDENTIFIER.fullmatch(schema):
        raise DatabaseURLError(
            f"invalid schema name {schema!r}: letters, digits and _ only, at most 63 characters"
        )
    return schema
