"""Endpoints carry tags and a severity, for notification routing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 10:12:40
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The server defaults fill the rows that exist already (SQLite cannot add a
    # NOT NULL column without one); new rows get theirs from the model. They are
    # plain strings on purpose: an SQL expression would make SQLite's batch mode
    # recreate the table, and dropping the old one cascades into its history.
    with op.batch_alter_table("endpoints", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("severity", sa.String(length=16), nullable=False, server_default="critical")
        )


def downgrade() -> None:
    # Never recreate the table on SQLite: dropping the old one with foreign keys on
    # deletes every row that references it (results, incidents, windows) by cascade.
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+) keeps them.
    with op.batch_alter_table("endpoints", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("severity")
        batch_op.drop_column("tags")
