"""Initial schema: events, attendees, photos, faces, face and attendee vectors, matches."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

ID = sa.String(26)
VERSION = sa.String(100)


def _ts(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.DateTime(timezone=True), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        *_ts("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_table(
        "attendees",
        sa.Column("id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("selfie_key", sa.String(1024)),
        sa.Column("selfie_file_name", sa.String(255)),
        sa.Column("reference_status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text()),
        *_ts("created_at", "updated_at"),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name="fk_attendees_event_id_events", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_attendees"),
    )
    op.create_index("ix_attendees_event_id", "attendees", ["event_id"])
    op.create_table(
        "photos",
        sa.Column("id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("uploader_id", ID, nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("declared_sha256", sa.String(64), nullable=False),
        sa.Column("declared_size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("sha256", sa.String(64)),
        sa.Column("duplicate_of", ID),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("source_format", sa.String(10)),
        sa.Column("face_count", sa.Integer()),
        *_ts("created_at", "updated_at"),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name="fk_photos_event_id_events", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["uploader_id"], ["attendees.id"], name="fk_photos_uploader_id_attendees", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
        sa.UniqueConstraint("object_key", name="uq_photos_object_key"),
    )
    op.create_index("ix_photos_uploader_id", "photos", ["uploader_id"])
    op.create_index("ix_photos_event_id_status", "photos", ["event_id", "status"])
    op.create_index("ix_photos_event_id_sha256", "photos", ["event_id", "sha256"])
    op.create_table(
        "faces",
        sa.Column("id", ID, nullable=False),
        sa.Column("photo_id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("detector_version", VERSION, nullable=False),
        sa.Column("face_index", sa.Integer(), nullable=False),
        sa.Column("left", sa.Integer(), nullable=False),
        sa.Column("top", sa.Integer(), nullable=False),
        sa.Column("right", sa.Integer(), nullable=False),
        sa.Column("bottom", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        *_ts("created_at"),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name="fk_faces_photo_id_photos", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_faces"),
        sa.UniqueConstraint(
            "photo_id", "detector_version", "face_index", name="uq_faces_photo_id_detector_version_face_index"
        ),
    )
    op.create_table(
        "face_vectors",
        sa.Column("face_id", ID, nullable=False),
        sa.Column("model_version", VERSION, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("photo_id", ID, nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        *_ts("created_at"),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name="fk_face_vectors_face_id_faces", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("face_id", "model_version", name="pk_face_vectors"),
    )
    op.create_index("ix_face_vectors_event_id_model_version", "face_vectors", ["event_id", "model_version"])
    op.create_index("ix_face_vectors_photo_id_model_version", "face_vectors", ["photo_id", "model_version"])
    op.create_table(
        "attendee_vectors",
        sa.Column("attendee_id", ID, nullable=False),
        sa.Column("model_version", VERSION, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        *_ts("created_at"),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name="fk_attendee_vectors_attendee_id_attendees", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("attendee_id", "model_version", name="pk_attendee_vectors"),
    )
    op.create_index("ix_attendee_vectors_event_id", "attendee_vectors", ["event_id"])
    op.create_table(
        "matches",
        sa.Column("photo_id", ID, nullable=False),
        sa.Column("attendee_id", ID, nullable=False),
        sa.Column("model_version", VERSION, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("face_id", ID, nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        *_ts("created_at"),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name="fk_matches_photo_id_photos", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name="fk_matches_attendee_id_attendees", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name="fk_matches_face_id_faces", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("photo_id", "attendee_id", "model_version", name="pk_matches"),
    )
    op.create_index("ix_matches_event_id", "matches", ["event_id"])
    op.create_index("ix_matches_attendee_id", "matches", ["attendee_id"])


def downgrade() -> None:
    for table in ("matches", "attendee_vectors", "face_vectors", "faces", "photos", "attendees", "events"):
        op.drop_table(table)
