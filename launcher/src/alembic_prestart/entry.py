"""The launcher's entry points, run before the rest of it is imported.

A launcher start imports click, asyncio, asyncpg and its own modules, asks the database one
question and execs uvicorn (or waits on its Alembic child). Those imports allocate tens of
thousands of objects and no garbage cycles worth collecting, yet with Python's default
thresholds the cyclic collector runs passes over the growing heap all along: 7 ms of a 119 ms
launcher start at head (hyperfine, 60 runs: 118.7 ms against 111.5 ms). So the objects that
exist when the launcher starts are frozen out of the collector's passes and collections are
made rarer for the launcher's life, not stopped: whatever cycles a long wait for the database
or the lock leaves are still collected.
"""

from __future__ import annotations

import gc

# A young-generation pass every 100,000 net allocations instead of every 700.
LAUNCHER_GC_THRESHOLDS = (100_000, 10, 10)
# Python's own, as this process started with them.
NORMAL_GC_THRESHOLDS = gc.get_threshold()


def fewer_collections() -> None:
    gc.freeze()
    gc.set_threshold(*LAUNCHER_GC_THRESHOLDS)


def no_collections() -> None:
    """For a process that imports its app and then serves (uvicorn_main.py): no collection at
    all until normal_collections(). Rarer ones are not enough there: a young pass every
    100,000 allocations still walks the whole of what the last 100,000 made (hyperfine,
    importing uvicorn and this repository's app: 795 ms by default, 720 ms with those
    thresholds, 583 ms with the collector off)."""
    gc.disable()


def normal_collections() -> None:
    """Python's collector as it started, the objects made meanwhile frozen out of its passes
    (they live as long as the process: its modules, classes and app)."""
    gc.freeze()
    gc.set_threshold(*NORMAL_GC_THRESHOLDS)
    gc.enable()


def console_main() -> None:
    """The `alembic-prestart` command."""
    fewer_collections()
    from alembic_prestart.cli import console_main as run

    run()
