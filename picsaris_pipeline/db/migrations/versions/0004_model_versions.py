"""Model versions per event: the active version guests see, and which photos are done under which."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("active_model_version", sa.String(100)))
    op.create_table(
        "photo_model_versions",
        sa.Column("photo_id", sa.String(26), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(26), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name="fk_photo_model_versions_photo_id_photos", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("photo_id", "model_version", name="pk_photo_model_versions"),
    )
    op.create_index(
        "ix_photo_model_versions_event_id_model_version", "photo_model_versions", ["event_id", "model_version"]
    )
    op.create_table(
        "attendee_model_versions",
        sa.Column("attendee_id", sa.String(26), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(26), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"],
            ["attendees.id"],
            name="fk_attendee_model_versions_attendee_id_attendees",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attendee_id", "model_version", name="pk_attendee_model_versions"),
    )
    op.create_index(
        "ix_attendee_model_versions_event_id_model_version",
        "attendee_model_versions",
        ["event_id", "model_version"],
    )
    op.execute(
        """
        insert into attendee_model_versions (attendee_id, model_version, event_id, matched_at)
        select attendee_id, model_version, event_id, created_at from attendee_vectors
        union select attendee_id, model_version, event_id, created_at from engine_users
        """
    )
    # Photos published before versions were tracked: done under the version their matches carry,
    # or their vectors' version when nobody was matched.
    op.execute(
        """
        insert into photo_model_versions (photo_id, model_version, event_id, faces, matched_at)
        select p.id, v.model_version, p.event_id, coalesce(p.face_count, 0), p.updated_at
        from photos p
        join (select distinct photo_id, model_version from face_vectors
              union select distinct photo_id, model_version from matches) v on v.photo_id = p.id
        where p.status = 'published'
        """
    )
    op.execute(
        """
        update events set active_model_version = (
            select m.model_version from photo_model_versions m where m.event_id = events.id
            group by m.model_version order by count(*) desc limit 1)
        """
    )


def downgrade() -> None:
    op.drop_table("attendee_model_versions")
    op.drop_table("photo_model_versions")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("active_model_version")
