"""The database URL: told apart (SQLite or PostgreSQL), shown without its password.

This module never decides where to connect. A PostgreSQL URL goes, exactly as it was given, to
asyncpg, which alone interprets it with libpq's semantics (PGHOST, PGPORT, PGPASSWORD, passfile,
sslmode, Unix sockets, several hosts); asyncpg also rejects what it cannot use, and the
launcher turns that into one line and exit 78 (launcher/database.py). Here a URL is only
recognised, checked for what no driver could read, and redacted for display by parsing it.

Standard library only: the launcher imports this before anything else.

Proven by tests/launcher/test_pure_modules.py (recognition, redaction) and, for what asyncpg
makes of each URL form, tests/launcher/test_database_urls.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")
SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")
# Lowercase: PostgreSQL folds an unquoted PUBLIC to public, but the launcher quotes the name,
# so "PUBLIC" would be a second schema beside public.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Where a URL starts inside free text (a child's output line): redacted by parsing it.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>,.;:)\]]")
_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})


class DatabaseURLError(ValueError):
    """A database URL or schema that cannot be used; the message never holds a password."""


@dataclass(frozen=True)
class DatabaseURL:
    """A database URL as the user gave it, and the SQLite file it names (absolute)."""

    url: str
    sqlite_file: Path | None = None  # set for SQLite only, resolved from the project root

    @property
    def scheme(self) -> str:
        return self.url.partition(":")[0].lower()

    @property
    def is_sqlite(self) -> bool:
        return self.scheme in SQLITE_SCHEMES

    @property
    def is_postgres(self) -> bool:
        return self.scheme in POSTGRES_SCHEMES

    @property
    def sqlite_path(self) -> Path:
        if self.sqlite_file is None:
            raise DatabaseURLError("not a SQLite URL")
        return self.sqlite_file

    @property
    def database(self) -> str:
        """The database named in the URL's path (empty: libpq's default applies)."""
        return unquote(urlsplit(self.url).path[1:])

    def asyncpg_dsn(self) -> str:
        """The same URL under the scheme asyncpg reads (SQLAlchemy's spelling dropped), with
        libpq's meaning where asyncpg's reading differs: an empty database name
        (`postgresql:///`, `postgresql://host/`) is no name, so PGDATABASE applies, as in psql.
        """
        if not self.is_postgres:
            return self.url
        dsn = "postgresql" + self.url[len(self.scheme) :]
        parts = urlsplit(dsn)
        if parts.path == "/":
            # asyncpg would connect to a database named "" (the server then takes the user's
            # name); libpq reads PGDATABASE first. Without a path asyncpg does the same.
            dsn = f"postgresql://{parts.netloc}" + (f"?{parts.query}" if parts.query else "")
            dsn += f"#{parts.fragment}" if parts.fragment else ""
        return dsn

    def sqlalchemy_url(self) -> str:
        """The URL naming the async driver, for SQLAlchemy (SQLite: the absolute file)."""
        if self.is_sqlite:
            return f"sqlite+aiosqlite:///{self.sqlite_path}"
        return "postgresql+asyncpg" + self.url[len(self.scheme) :]

    def redacted(self) -> str:
        """The URL with every password replaced by ***, safe for logs and errors."""
        return redact_url(self.url)

    def secrets(self) -> frozenset[str]:
        """The password in every spelling an error text may quote (see url_secrets)."""
        return url_secrets(self.url) if self.is_postgres else frozenset()

    def scrub(self, text: str) -> str:
        """`text` (a driver's error about this URL) without any fragment of its password."""
        return scrub(text, self.secrets())

    def describe(self) -> str:
        """What an operator reads on the first lines: which database this is."""
        if self.is_sqlite:
            return f"sqlite {self.sqlite_path}"
        return redact_url(self.url)


def parse_database_url(raw: str | None, *, root: Path, default: str | None = None) -> DatabaseURL:
    """Recognise a user-supplied URL, or raise DatabaseURLError with a password-free message.

    Empty means `default` (a project's own, such as a SQLite file), and is an error without
    one; a relative SQLite path resolves from `root` (the folder of the Alembic configuration),
    never from the cwd.
    """
    if raw is None or not raw.strip():
        if not default:
            raise DatabaseURLError(
                "no database URL: set DATABASE_URL (postgresql:///name reads the rest from "
                "PGHOST, PGUSER, ... like psql; sqlite:///path for a SQLite file)"
            )
        raw = default
    url = raw.strip()
    scheme, colon, _rest = url.partition(":")
    if not colon or scheme.lower() not in (*POSTGRES_SCHEMES, *SQLITE_SCHEMES):
        shown = scheme.lower() if colon and len(scheme) < 30 else "(none)"
        raise DatabaseURLError(
            f"unsupported database URL scheme {shown!r}: use postgres://, postgresql:// "
            "or sqlite:///path"
        )
    if scheme.lower() in SQLITE_SCHEMES:
        return DatabaseURL(url, sqlite_file=_sqlite_file(url, root))
    if not url[len(scheme) :].startswith("://"):
        raise DatabaseURLError("malformed PostgreSQL URL: expected postgresql://...")
    return DatabaseURL(url)


def _sqlite_file(url: str, root: Path) -> Path:
    parts = urlsplit(url)
    if parts.netloc:
        raise DatabaseURLError(
            "malformed SQLite URL: use sqlite:///relative/path or sqlite:////abs"
        )
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    if not path or path == ":memory:":
        raise DatabaseURLError("SQLite needs a database file, not an in-memory database")
    return (root / path).resolve()


def validate_schema(schema: str) -> str:
    """A PostgreSQL schema name we can safely quote into DDL and search_path."""
    if not _IDENTIFIER.fullmatch(schema) or schema.startswith("pg_"):
        raise DatabaseURLError(
            f"invalid schema name {schema!r}: lowercase letters, digits and _ only, at most 63 "
            "characters, not pg_ (PostgreSQL's own)"
        )
    return schema


def redact_url(url: str) -> str:
    """A URL with the password of its user part and of its query replaced by ***.

    Parsed, not searched: the user part ends at the URL's last @, so a password holding @, :,
    or even an unencoded / ? # (which libpq would misread, but a log must still not show) is
    redacted whole; text that merely equals the password elsewhere is left alone.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, tail = rest.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        prefix = f"{user}:***@" if colon else f"{userinfo}@"
    else:
        prefix, tail = "", rest
    path, question, query = tail.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        pairs = []
        for pair in query.split("&"):
            key = unquote(pair.partition("=")[0]).lower()
            pairs.append(f"{pair.partition('=')[0]}=***" if key in _SECRET_QUERY_KEYS else pair)
        tail = f"{path}?{'&'.join(pairs)}{hash_}{fragment}"
    return f"{scheme}://{prefix}{tail}"


def redact_urls_in(text: str) -> str:
    """Every URL inside a line of text, redacted (a child's output, an error message)."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


# A fragment this short of a password may stand in any text; one this long is the password's.
FRAGMENT_CHARACTERS = 3


def url_secrets(url: str, environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every spelling of the password a URL (and PGPASSWORD) may carry: as written and decoded,
    read up to the first @ (as drivers split it) and up to the last (as a person meant it), and
    the query's password parameters. What a driver's error text might quote back."""
    found: set[str] = set()
    env = os.environ if environ is None else environ
    if env.get("PGPASSWORD"):
        found.add(env["PGPASSWORD"])
    _scheme, sep, rest = url.partition("://")
    if sep:
        for userinfo in (rest.partition("@")[0] if "@" in rest else "", rest.rpartition("@")[0]):
            _user, colon, password = userinfo.partition(":")
            if colon and password:
                found.add(password)
        for pair in rest.partition("?")[2].partition("#")[0].split("&"):
            key, _eq, value = pair.partition("=")
            if unquote(key).lower() in _SECRET_QUERY_KEYS and value:
                found.add(value)
    found |= {unquote(secret) for secret in found}
    return frozenset(secret for secret in found if secret)


def scrub(text: str, secrets: Collection[str]) -> str:
    """`text` with every fragment of a secret FRAGMENT_CHARACTERS long or longer replaced by
    ***: an error text a driver built from a misparsed URL holds pieces of the password
    (`invalid literal for int(): 'Kx7@Lm8'`), not the whole of it."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) < FRAGMENT_CHARACTERS:
            if secret and secret in text and len(secret) == len(text.strip()):
                text = "***"
            continue
        for size in range(len(secret), FRAGMENT_CHARACTERS - 1, -1):
            for start in range(len(secret) - size + 1):
                fragment = secret[start : start + size]
                if fragment in text and fragment != "***":
                    text = text.replace(fragment, "***")
    return text
