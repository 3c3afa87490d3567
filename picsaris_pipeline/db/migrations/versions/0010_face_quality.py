"""Face quality: size, blur and pose per face, so a face too small or blurred to match is counted but not matched."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    # Faces detected before this revision have no row: they count as matchable, as they were.
    op.create_table(
        "face_quality",
        sa.Column("face_id", sa.String(26), nullable=False),
        sa.Column("photo_id", sa.String(26), nullable=False),
        sa.Column("size_px", sa.Integer(), nullable=False),
        sa.Column("sharpness", sa.Float(), nullable=False),
        sa.Column("yaw_degrees", sa.Float(), nullable=False),
        sa.Column("matchable", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(100)),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name="fk_face_quality_face_id_faces", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("face_id", name="pk_face_quality"),
    )
    op.create_index("ix_face_quality_photo_id", "face_quality", ["photo_id"])


def downgrade() -> None:
    op.drop_index("ix_face_quality_photo_id", table_name="face_quality")
    op.drop_table("face_quality")
