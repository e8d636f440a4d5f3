"""alembic-prestart: wait for the database, migrate in an Alembic child, then exec uvicorn.

Imports only the standard library and click at start-up; a database driver is imported lazily.

The public API, for a project's migrations/env.py::

    from alembic_prestart import create_async_engine, async_migration_lock, offline_url
    # or, for Alembic's sync `generic` template:
    from alembic_prestart import create_engine, migration_lock, offline_url

`create_engine` / `create_async_engine` read DATABASE_URL the launcher's way (libpq's rules,
`postgres://`, `?sslmode=`, PG* variables, SQLite paths from the alembic.ini's folder);
`offline_url` is the dialect for `--sql`; `migration_lock` / `async_migration_lock` hold the
migration lock, put the tables in DATABASE_SCHEMA and run the safety guard (see lock/env.py).
For an app's readiness check, `code_revisions(alembic_ini)`: the code's heads and known
revisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy attributes below resolve to, for type checkers
    from alembic_prestart.db.engine import create_async_engine, create_engine, offline_url
    from alembic_prestart.lock.env import async_migration_lock, migration_lock
    from alembic_prestart.revisions.app import CodeRevisions, code_revisions

_LAZY = {
    "async_migration_lock": "alembic_prestart.lock.env",
    "migration_lock": "alembic_prestart.lock.env",
    "create_engine": "alembic_prestart.db.engine",
    "create_async_engine": "alembic_prestart.db.engine",
    "offline_url": "alembic_prestart.db.engine",
    "CodeRevisions": "alembic_prestart.revisions.app",
    "code_revisions": "alembic_prestart.revisions.app",
}

__all__ = [
    "CodeRevisions",
    "__version__",
    "async_migration_lock",
    "code_revisions",
    "create_async_engine",
    "create_engine",
    "migration_lock",
    "offline_url",
]


def __getattr__(name: str) -> Any:
    # Lazily: the launcher's own start-up never pays for what only env.py or an app uses.
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "__version__":
        # importlib.metadata costs the launcher's start-up tens of milliseconds: only on demand.
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("alembic-prestart")
        except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
            return "0+unknown"
    raise AttributeError(f"module 'alembic_prestart' has no attribute {name!r}")
