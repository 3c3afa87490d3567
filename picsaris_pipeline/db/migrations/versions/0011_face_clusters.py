"""Unknown-face clusters: an event's unmatched faces grouped by person."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_table(
        "face_clusters",
        sa.Column("face_id", sa.String(26), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(26), nullable=False),
        sa.Column("photo_id", sa.String(26), nullable=False),
        sa.Column("cluster_id", sa.String(26)),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attendee_id", sa.String(26)),
        sa.Column("similarity", sa.Float()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name="fk_face_clusters_face_id_faces", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name="fk_face_clusters_attendee_id_attendees", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("face_id", "model_version", name="pk_face_clusters"),
    )
    op.create_index("ix_face_clusters_event_id_model_version", "face_clusters", ["event_id", "model_version"])
    op.create_index("ix_face_clusters_photo_id_model_version", "face_clusters", ["photo_id", "model_version"])


def downgrade() -> None:
    op.drop_index("ix_face_clusters_photo_id_model_version", table_name="face_clusters")
    op.drop_index("ix_face_clusters_event_id_model_version", table_name="face_clusters")
    op.drop_table("face_clusters")
