"""Database URLs in the tests: the launcher's URL module, with this project's root."""

from pathlib import Path

from launcher.database_url import DEFAULT_SCHEMA, DatabaseURL, DatabaseURLError
from launcher.database_url import parse_database_url as _parse

PROJECT_ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "DEFAULT_SCHEMA",
    "PROJECT_ROOT",
    "DatabaseURL",
    "DatabaseURLError",
    "parse_database_url",
]


def parse_database_url(raw: str | None) -> DatabaseURL:
    return _parse(raw, root=PROJECT_ROOT)
