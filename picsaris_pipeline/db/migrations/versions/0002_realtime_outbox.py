"""Realtime outbox: messages written with their matches, delivered once."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "realtime_outbox",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("event_id", sa.String(26), nullable=False),
        sa.Column("photo_id", sa.String(26), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name="fk_realtime_outbox_photo_id_photos", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_realtime_outbox"),
        sa.UniqueConstraint(
            "photo_id", "topic", "model_version", name="uq_realtime_outbox_photo_id_topic_model_version"
        ),
    )
    op.create_index("ix_realtime_outbox_sent_at_created_at", "realtime_outbox", ["sent_at", "created_at"])


def downgrade() -> None:
    op.drop_table("realtime_outbox")
