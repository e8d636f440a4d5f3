"""Alembic migrations; env.py is the entry point Alembic loads."""
