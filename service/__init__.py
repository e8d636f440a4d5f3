"""The users service: a FastAPI app on PostgreSQL (asyncpg) or SQLite (aiosqlite)."""
