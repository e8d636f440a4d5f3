"""The launcher behind supervisor.py: wait for the database, migrate in a child, exec uvicorn.

Imports only the standard library and click at start-up; a database driver is imported lazily.

Public API, for a project's migrations/env.py (see launcher/env_lock.py)::

    from alembic_prestart import migration_lock, async_migration_lock

and for an app's readiness check, `code_revisions(alembic_ini)`: the code's heads and known
revisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy attributes below resolve to, for type checkers
    from alembic_prestart.lock.env import async_migration_lock, migration_lock
    from alembic_prestart.revisions.app import CodeRevisions, code_revisions

__all__ = ["CodeRevisions", "async_migration_lock", "code_revisions", "migration_lock"]


def __getattr__(name: str) -> Any:
    # Lazily: the launcher's own start-up never pays for what only env.py or an app uses.
    import importlib

    if name in ("async_migration_lock", "migration_lock"):
        return getattr(importlib.import_module("alembic_prestart.lock.env"), name)
    if name in ("CodeRevisions", "code_revisions"):
        return getattr(importlib.import_module("alembic_prestart.revisions.app"), name)
    raise AttributeError(f"module 'launcher' has no attribute {name!r}")
