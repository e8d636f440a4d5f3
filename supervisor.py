#!/usr/bin/env python3
"""Start the service safely: wait for the database, migrate in a child, then exec uvicorn.

    python supervisor.py [serve] [OPTIONS] [-- UVICORN_ARGS]
    python supervisor.py migrate
    python supervisor.py check

The launcher is alembic-prestart (./launcher); this file only gives it this project's defaults
(service/defaults.py). Run `python supervisor.py --help` for the options; docs/launcher.md
documents exit codes.
"""

import os
import sys

# The project root first, whatever the cwd: `cd / && python /srv/app/supervisor.py` works.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from alembic_prestart.entry import fewer_collections

fewer_collections()  # before the launcher's imports: see alembic_prestart/entry.py

from alembic_prestart.cli import Defaults, main  # noqa: E402

from service import defaults  # noqa: E402

THIS_PROJECT = Defaults(
    alembic_config=defaults.ALEMBIC_INI,
    schema=defaults.DATABASE_SCHEMA,
    app=defaults.APP,
    database_url=defaults.DATABASE_URL,
    ready_path=defaults.READY_PATH,
)

if __name__ == "__main__":
    main(prog_name="supervisor.py", obj=THIS_PROJECT)
