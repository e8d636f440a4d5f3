"""Table definitions (SQLAlchemy Core); the migrations must keep the database equal to these.

Tables carry no schema: on PostgreSQL every connection's search_path points at the configured
schema, so the same metadata serves `test_app` on PostgreSQL and the single SQLite namespace.
"""

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, text

from service.limits import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    # BIGINT on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("name", String(NAME_MAX_LENGTH), nullable=False),
    Column("email", String(EMAIL_MAX_LENGTH), nullable=False, unique=True),
    Column(
        "created_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=text("CURRENT_TIMESTAMP"),
    ),
    # Ids are never reused. PostgreSQL's sequence never goes back; SQLite without AUTOINCREMENT
    # hands out max(id) + 1, which is a deleted user's id again when the newest was deleted.
    sqlite_autoincrement=True,
)
