"""The migration lock's key and holder query, shared by the launcher and migrations/env.py.

Standard library only: the launcher imports it, and so does env.py (the project root is on
sys.path there).
"""

import hashlib

# Set by the launcher for its alembic child when the launcher itself holds the lock: the server
# pid of the session holding it. env.py checks in pg_locks that this session holds it, and only
# then migrates without taking the lock itself.
LOCK_HOLDER_ENV = "MIGRATION_LOCK_HOLDER"


def advisory_lock_key(database: str, schema: str) -> int:
    """A stable, non-negative 63-bit key per database and schema."""
    digest = hashlib.blake2b(f"migrations\0{database}\0{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def holder_query(key: int) -> str:
    """Who holds the lock: pid, application_name, state (one row, or none)."""
    return (
        "SELECT a.pid, a.application_name, a.state "
        "FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        f"AND l.classid = {key >> 32} AND l.objid = {key & 0xFFFF_FFFF}"
    )
