"""The launcher behind supervisor.py: wait for the database, migrate in a child, exec uvicorn.

Imports only the standard library and click at start-up; a database driver is imported lazily.
"""
