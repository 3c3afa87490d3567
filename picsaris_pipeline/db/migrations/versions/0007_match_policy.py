"""The matching policy: candidate matches, several references per guest, match confirmations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

ID = sa.String(26)
VERSION = sa.String(100)


def upgrade() -> None:
    # Nullable: matches made before there was a policy have none (they are re-matched under one).
    with op.batch_alter_table("matches") as batch:
        batch.add_column(sa.Column("policy_id", VERSION))
    op.create_table(
        "photo_match_policies",
        sa.Column("photo_id", ID, nullable=False),
        sa.Column("model_version", VERSION, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("policy_id", VERSION, nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name="fk_photo_match_policies_photo_id_photos", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("photo_id", "model_version", name="pk_photo_match_policies"),
    )
    op.create_index(
        "ix_photo_match_policies_event_id_model_version", "photo_match_policies", ["event_id", "model_version"]
    )
    op.create_table(
        "match_candidates",
        sa.Column("photo_id", ID, nullable=False),
        sa.Column("attendee_id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("model_version", VERSION, nullable=False),
        sa.Column("face_id", ID, nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("policy_id", VERSION, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name="fk_match_candidates_photo_id_photos", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name="fk_match_candidates_attendee_id_attendees", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("photo_id", "attendee_id", name="pk_match_candidates"),
    )
    op.create_index("ix_match_candidates_event_id", "match_candidates", ["event_id"])
    op.create_index("ix_match_candidates_attendee_id", "match_candidates", ["attendee_id"])
    op.create_table(
        "attendee_references",
        sa.Column("id", ID, nullable=False),
        sa.Column("attendee_id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("model_version", VERSION, nullable=False),
        sa.Column("photo_id", ID, nullable=False),
        sa.Column("face_id", ID, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name="fk_attendee_references_attendee_id_attendees", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name="fk_attendee_references_photo_id_photos", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_attendee_references"),
        sa.UniqueConstraint(
            "attendee_id", "model_version", "photo_id", name="uq_attendee_references_attendee_id_model_version_photo_id"
        ),
    )
    op.create_index(
        "ix_attendee_references_event_id_model_version", "attendee_references", ["event_id", "model_version"]
    )


def downgrade() -> None:
    op.drop_index("ix_attendee_references_event_id_model_version", table_name="attendee_references")
    op.drop_table("attendee_references")
    op.drop_index("ix_match_candidates_attendee_id", table_name="match_candidates")
    op.drop_index("ix_match_candidates_event_id", table_name="match_candidates")
    op.drop_table("match_candidates")
    op.drop_index("ix_photo_match_policies_event_id_model_version", table_name="photo_match_policies")
    op.drop_table("photo_match_policies")
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("policy_id")
