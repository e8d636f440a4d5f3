"""The database URL: told apart (SQLite or PostgreSQL), shown without its password.

A PostgreSQL URL means what libpq (psql) makes of it, and asyncpg is the one that reads it
(PGHOST, PGPORT, PGPASSWORD, sslmode, Unix sockets, several hosts); asyncpg also rejects what it
cannot use, and the launcher turns that into one line and exit 78. Where asyncpg's reading
differs from libpq's, `asyncpg_dsn` hands asyncpg libpq's answer: a query parameter wins over the
URL's own part, the default user is the system's, the passfile is read with libpq's escapes and
host names, and a client-only parameter is not sent to the server as a setting; what no URL can
make asyncpg do (one password per host) is refused. Here a URL is also recognised, checked for
what no driver could read, and redacted for display by parsing it.

Standard library only: the launcher imports this before anything else.
"""

from __future__ import annotations

import getpass
import os
import re
import stat
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")
SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")
# Lowercase: PostgreSQL folds an unquoted PUBLIC to public, but the launcher quotes the name,
# so "PUBLIC" would be a second schema beside public.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Where a URL starts inside free text (a child's output line): redacted by parsing it.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>,.;:)\]]")
_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})
# libpq's client settings asyncpg does not know: it would send them to the server as settings,
# which refuses them. Each caller bounds its own connect (--db-wait, DATABASE_TIMEOUT).
_CLIENT_ONLY_KEYS = frozenset({"connect_timeout"})
# The socket directory libpq is built with (Debian and Red Hat; upstream: /tmp): the passfile
# calls it localhost, and any other directory by its path.
_DEFAULT_SOCKET_DIRECTORIES = ("/var/run/postgresql", "/tmp")


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
        """The URL as asyncpg must read it to land where psql lands with the same URL and
        environment (os.environ, read now), under the scheme asyncpg reads. Raises
        DatabaseURLError where no URL can make asyncpg do what libpq does."""
        if not self.is_postgres:
            return self.url
        return _libpq_meaning("postgresql" + self.url[len(self.scheme) :])

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

    def display(self) -> str:
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
    parsed = DatabaseURL(url)
    parsed.asyncpg_dsn()  # what asyncpg cannot do as libpq does is refused now, not at connect
    return parsed


def _libpq_meaning(dsn: str) -> str:
    """`dsn` rewritten so that asyncpg reads what libpq reads (see the module's docstring)."""
    try:
        parts = urlsplit(dsn)
    except ValueError:  # malformed: asyncpg says so when it reads it
        return dsn
    items = [item for item in parts.query.split("&") if item]
    if any("=" not in item for item in items):
        return dsn  # asyncpg rejects it, as libpq does
    # libpq decodes a query as it decodes the rest of a URL: a + is a +, not a space.
    pairs = [(unquote(key), unquote(value)) for key, _, value in (i.partition("=") for i in items)]
    keys = {key for key, _value in pairs}
    if "database" in keys and "dbname" not in keys:  # asyncpg's spelling; psycopg knows dbname
        pairs = [("dbname" if key == "database" else key, value) for key, value in pairs]
        keys = {key for key, _value in pairs}
    auth, at, hostspec = parts.netloc.partition("@")
    if not at:
        auth, hostspec = "", auth
    if "host" not in keys and any(
        "@" in spec and not unquote(spec).startswith("/") for spec in hostspec.split(",")
    ):
        # libpq ends the user part at the first @ too, then fails to resolve a host holding the
        # rest of the password: say what to change now, instead of waiting out --db-wait. (A
        # socket directory may hold an @; a host= parameter replaces the URL's hosts.)
        raise DatabaseURLError(
            "the URL has a second @ before its host: percent-encode an @ in the user name or "
            "password as %40"
        )
    user, _colon, password = auth.partition(":")
    # An empty database name is none (PGDATABASE applies), and libpq reads the query after the
    # URL's parts: a parameter wins over the part, where asyncpg lets the part win.
    path = "" if parts.path == "/" or "dbname" in keys else parts.path
    user = "" if "user" in keys else user
    password = "" if "password" in keys else password
    hosts = [_host_and_port(spec) for spec in hostspec.split(",")] if hostspec else []
    if "host" in keys and hosts:
        ports = [port for _host, port in hosts]
        if "port" not in keys and all(ports):
            pairs.append(("port", ",".join(ports)))
        hosts = []
    elif "port" in keys and hosts:
        # Into the URL's hosts: asyncpg gives a host without a port 5432 before the query.
        ports = dict(pairs)["port"].split(",")
        ports *= len(hosts) if len(ports) == 1 else 1
        if len(ports) == len(hosts):
            hosts = [(host, port) for (host, _old), port in zip(hosts, ports, strict=True)]
            pairs = [(key, value) for key, value in pairs if key != "port"]
    pairs = [(key, value) for key, value in pairs if key not in _CLIENT_ONLY_KEYS]
    found = dict(pairs)
    with_service = "service" in found or os.environ.get("PGSERVICE")
    system_user = _system_user()
    user_given = user or "user" in found or os.environ.get("PGUSER") or with_service
    if not user_given and system_user and system_user != _asyncpg_default_user():
        pairs.append(("user", system_user))  # libpq asks the system, not USER or LOGNAME
        found["user"] = system_user
    if not (password or "password" in found or os.environ.get("PGPASSWORD") or with_service):
        secret = _passfile_password(
            found,
            hosts=found.get("host") or ",".join(unquote(host).strip("[]") for host, _ in hosts),
            ports=found.get("port") or ",".join(port for _host, port in hosts),
            user=found.get("user") or unquote(user) or os.environ.get("PGUSER") or system_user,
            database=found.get("dbname") or unquote(path[1:]),
        )
        if secret:
            pairs.append(("password", secret))
    netloc = ",".join(host + (f":{port}" if port else "") for host, port in hosts)
    auth = user + (f":{password}" if password else "")
    query = "&".join(f"{quote(key, safe='')}={quote(value, safe='/,:')}" for key, value in pairs)
    return (
        f"postgresql://{f'{auth}@' if auth else ''}{netloc}{path}"
        + (f"?{query}" if query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


def _host_and_port(spec: str) -> tuple[str, str]:
    """`host:port`, `[v6]:port` or a bare host, as written (still percent-encoded)."""
    if spec.startswith("["):
        host, bracket, rest = spec.partition("]")
        return host + bracket, rest[1:] if rest.startswith(":") else ""
    host, _colon, port = spec.partition(":")
    return host, port


def _system_user() -> str | None:
    """libpq's default user: the name of the effective user id."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return None


def _asyncpg_default_user() -> str | None:
    try:
        return getpass.getuser()  # LOGNAME, USER, LNAME, USERNAME, then the password database
    except (KeyError, OSError):
        return None


def _passfile_password(
    found: Mapping[str, str], *, hosts: str, ports: str, user: str | None, database: str
) -> str | None:
    """The password libpq would read from the passfile for every host of the URL.

    asyncpg reads the file its own way: a backslash stays in the password (`\\:` is not `:`),
    every Unix socket is `localhost`, and the first host's line serves every host. This is
    libpq's reading; a different password for different hosts is refused (asyncpg sends one).
    """
    host_list = (hosts or os.environ.get("PGHOST", "")).split(",")
    port_list = [port or "5432" for port in (ports or os.environ.get("PGPORT", "")).split(",")]
    if len(port_list) == 1:
        port_list *= len(host_list)
    if not user or len(port_list) != len(host_list):
        return None  # asyncpg reports what is wrong
    database = database or os.environ.get("PGDATABASE") or user
    try:
        named = found.get("passfile") or os.environ.get("PGPASSFILE")
        path = Path(named) if named else Path.home() / ".pgpass"
        mode = path.stat().st_mode
        # Like libpq: only a plain file nobody else may read.
        if not stat.S_ISREG(mode) or mode & 0o077:
            return None
        lines = path.read_text().splitlines()
    except (OSError, RuntimeError, UnicodeDecodeError):
        return None
    entries = [_passfile_fields(line) for line in lines if line and not line.startswith("#")]
    passwords = set()
    for host, port in zip(host_list, port_list, strict=True):
        key = "localhost" if not host or host in _DEFAULT_SOCKET_DIRECTORIES else host
        passwords.add(_passfile_match(entries, (key, port, database, user)))
    if len(passwords) > 1:
        raise DatabaseURLError(
            "the passfile gives the hosts of this URL different passwords, and asyncpg sends one "
            "password to every host: give one line for all of them (or the password in "
            "PGPASSWORD)"
        )
    return passwords.pop() if passwords else None


def _passfile_match(entries: list[list[tuple[str, str]]], wanted: tuple[str, ...]) -> str | None:
    """The password of the first line for (host, port, database, user); `*` matches any."""
    for fields in entries:
        if len(fields) >= 5 and all(
            raw == "*" or value == want for (raw, value), want in zip(fields, wanted, strict=False)
        ):
            return fields[4][1] or None  # an empty password is none, as in libpq
    return None


def _passfile_fields(line: str) -> list[tuple[str, str]]:
    """A passfile line's fields, each as written and as meant (`\\:` is `:`, `\\\\` is `\\`)."""
    fields = [("", "")]
    escaped = False
    for char in line:
        raw, value = fields[-1]
        if escaped:
            fields[-1], escaped = (raw + char, value + char), False
        elif char == "\\":
            fields[-1], escaped = (raw + char, value), True
        elif char == ":":
            fields.append(("", ""))
        else:
            fields[-1] = (raw + char, value + char)
    if escaped:  # a backslash at the end stands for itself
        fields[-1] = (fields[-1][0], fields[-1][1] + "\\")
    return fields


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
