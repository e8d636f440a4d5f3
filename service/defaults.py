"""This project's defaults, in one place: the entry point (supervisor.py), the app's settings
and the migrations read them. Standard library only: supervisor.py imports this before the
exec, and nothing of the app with it."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
# A file under the project root (relative SQLite paths resolve from alembic.ini's folder): a
# newcomer needs no database server.
DATABASE_URL = "sqlite:///var/app.db"
DATABASE_SCHEMA = "test_app"
APP = "service.main:app"
# What the readiness watcher asks for under systemd: a route that answers 200 without the database.
READY_PATH = "/healthz"
