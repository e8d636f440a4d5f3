#!/usr/bin/env python3
"""Start the service safely: wait for the database, migrate in a child, then exec uvicorn.

    python supervisor.py [serve] [OPTIONS] [-- UVICORN_ARGS]
    python supervisor.py migrate
    python supervisor.py check

Run `python supervisor.py --help` for the options; docs/launcher.md documents exit codes.
"""

import os
import sys
from pathlib import Path

# The project root first, whatever the cwd: `cd / && python /srv/app/supervisor.py` works.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from launcher.cli import main, this_project

if __name__ == "__main__":
    main(prog_name="supervisor.py", obj=this_project(Path(__file__).resolve().parent))
