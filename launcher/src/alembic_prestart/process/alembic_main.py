"""Alembic's own command line (`alembic.config.main`), started the way the launcher wants it.

The launcher runs `python -m alembic_prestart.process.alembic_main -c INI upgrade head` where it
would run `python -m alembic -c INI upgrade head`: the same arguments, the same command, the
same exit statuses (Alembic's own `main`). One thing differs: the imports every Alembic run
pays before env.py runs (Alembic, SQLAlchemy, the driver, and the launcher's env.py helpers
with the safety analysis) are done with the cyclic garbage collector paused. Importing them
allocates some hundred thousand objects and no garbage cycles worth collecting, yet the
collector ran its passes over the growing heap all along: about 45 ms of a 420 ms start on a
2-core machine (bench/startup.py, the pending-revision case). The collector is back on, and
the modules frozen out of its passes, before Alembic reads anything of the project, so a
migration runs with the collector as usual.
"""

from __future__ import annotations

import contextlib
import gc
import sys

# What env.py imports through the launcher's helpers (and what Alembic needs anyway). A module
# that is missing (psycopg, say) is left for env.py to import, or fail on, in its own words.
_PRELOADED = (
    "alembic.config",
    "alembic.command",
    "alembic.context",
    "sqlalchemy",
    "sqlalchemy.ext.asyncio",
    "asyncpg",
    "alembic_prestart.lock.env",
    "alembic_prestart.db.engine",
    "alembic_prestart.safety.guard",
)


def preload() -> None:
    """Import what every run needs, with the collector paused."""
    import importlib

    gc.disable()
    try:
        for name in _PRELOADED:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    finally:
        gc.enable()
        gc.freeze()  # the modules live as long as the process: no pass need look at them


def main() -> None:
    preload()
    from alembic.config import main as alembic_main

    alembic_main(argv=sys.argv[1:], prog="alembic")


if __name__ == "__main__":
    main()
