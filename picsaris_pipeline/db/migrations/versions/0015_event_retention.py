"""Retention: when an event ends, and when its Dagster partitions and runs were archived."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    # Events created before this revision have no end: they end a quiet period after their last upload.
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("ends_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("archived_at")
        batch.drop_column("ends_at")
