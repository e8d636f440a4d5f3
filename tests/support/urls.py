"""Database URLs in the tests: the launcher's URL module, with this project's root and defaults."""

from urllib.parse import urlsplit

from alembic_prestart.db.url import DatabaseURL, DatabaseURLError
from alembic_prestart.db.url import parse_database_url as _parse

from service.defaults import DATABASE_SCHEMA as DEFAULT_SCHEMA
from service.defaults import DATABASE_URL, PROJECT_ROOT

__all__ = [
    "DEFAULT_SCHEMA",
    "PROJECT_ROOT",
    "DatabaseURL",
    "DatabaseURLError",
    "parse_database_url",
    "with_database",
]


def parse_database_url(raw: str | None) -> DatabaseURL:
    return _parse(raw, root=PROJECT_ROOT, default=DATABASE_URL)


def with_database(url: DatabaseURL, name: str) -> DatabaseURL:
    """The same server and credentials, another database (PostgreSQL only)."""
    return DatabaseURL(urlsplit(url.url)._replace(path="/" + name).geturl())
