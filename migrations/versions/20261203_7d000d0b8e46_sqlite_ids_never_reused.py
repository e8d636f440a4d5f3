"""sqlite ids never reused

Revision ID: 7d000d0b8e46
Revises: 0001
Create Date: 2026-12-03 14:58:40.418231

SQLite hands out max(id) + 1 unless the table is declared AUTOINCREMENT, so deleting the newest
user made its id the next one's. The table is rebuilt with AUTOINCREMENT (batch mode: a copy
under a temporary name, rows and ids kept, the old table dropped, the copy renamed); the copied
rows set SQLite's sequence to the highest id. PostgreSQL's sequence never hands an id out twice:
nothing to do there.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d000d0b8e46"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _users_as_of_0001() -> sa.Table:
    """The table this revision rebuilds, as revision 0001 created it: given to batch mode
    instead of reflecting it, so `alembic upgrade --sql` can render the rebuild too."""
    return sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )


def _rebuild(*, autoincrement: bool) -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "users",
        recreate="always",
        copy_from=_users_as_of_0001(),
        table_kwargs={"sqlite_autoincrement": autoincrement},
    ):
        pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
