"""Engine-side face and user ids (AWS Rekognition keeps faces in collections, never vectors)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "engine_faces",
        sa.Column("face_id", sa.String(26), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(26), nullable=False),
        sa.Column("photo_id", sa.String(26), nullable=False),
        sa.Column("collection_id", sa.String(255), nullable=False),
        sa.Column("external_face_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name="fk_engine_faces_face_id_faces", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("face_id", "model_version", name="pk_engine_faces"),
    )
    op.create_index("ix_engine_faces_photo_id_model_version", "engine_faces", ["photo_id", "model_version"])
    op.create_table(
        "engine_users",
        sa.Column("attendee_id", sa.String(26), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(26), nullable=False),
        sa.Column("collection_id", sa.String(255), nullable=False),
        sa.Column("external_user_id", sa.String(128), nullable=False),
        sa.Column("external_face_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name="fk_engine_users_attendee_id_attendees", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("attendee_id", "model_version", name="pk_engine_users"),
    )
    op.create_index("ix_engine_users_event_id", "engine_users", ["event_id"])


def downgrade() -> None:
    op.drop_table("engine_users")
    op.drop_table("engine_faces")
