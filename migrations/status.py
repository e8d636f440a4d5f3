"""Print the pending revisions, asking Alembic itself: `python -m migrations.status`.

The launcher's `check` runs this as a child when it cannot read the revision graph statically.
Output, one per line: `current <rev>` for each applied head, then `pending <rev>` oldest first.
Exit 0 on success; Alembic's own errors exit 255 with a `FAILED:` line, as its CLI does.
"""

from __future__ import annotations

import asyncio
import sys

from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from migrations.settings import MigrationSettings, create_migration_engine
from service.database_url import PROJECT_ROOT


def _current_heads(connection: Connection, settings: MigrationSettings) -> tuple[str, ...]:
    options = {"version_table_schema": settings.schema} if settings.url.is_postgres else {}
    return MigrationContext.configure(connection, opts=options).get_current_heads()


async def _read_current(settings: MigrationSettings) -> tuple[str, ...]:
    engine = create_migration_engine(settings)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_heads, settings)
    finally:
        await engine.dispose()


def main() -> int:
    try:
        settings = MigrationSettings.from_environment()
        script = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
        current = asyncio.run(_read_current(settings))
        pending = [
            revision.revision for revision in script.iterate_revisions("heads", current or "base")
        ]
    except (CommandError, ValueError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 255
    for revision in current:
        print(f"current {revision}")
    for revision in reversed(pending):
        print(f"pending {revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
