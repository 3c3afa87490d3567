"""The schema at revision 0014, in one step: the migrations 0001-0014 squashed.

Databases already at 0014 (every one this code has deployed) see nothing to do; a database at an
earlier revision is refused with the way to upgrade it (db/migrate.py, docs/OPERATIONS.md,
"Upgrading the database"). The revision keeps the id "0014" for that reason. Later changes are new
revisions on top of this one; this file stays as it is. It is long because it is the whole schema,
written out as Alembic ops (generated from db/schema.py when squashed, and checked table by table,
column, key and index, against the database the fourteen migrations built, on SQLite and Postgres).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = None

# Created in this order (a table after those it refers to); dropped in the reverse.
TABLES = (
    "events",
    "work_leases",
    "attendees",
    "attendee_model_versions",
    "attendee_vectors",
    "engine_users",
    "photos",
    "attendee_references",
    "faces",
    "match_candidates",
    "photo_match_policies",
    "photo_model_versions",
    "realtime_outbox",
    "engine_faces",
    "face_clusters",
    "face_quality",
    "face_vectors",
    "matches",
)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("active_model_version", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_table(
        "work_leases",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("item_id", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "item_id", name=op.f("pk_work_leases")),
    )
    op.create_index("ix_work_leases_holder", "work_leases", ["holder"], unique=False)
    op.create_table(
        "attendees",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("selfie_key", sa.String(length=1024), nullable=True),
        sa.Column("selfie_file_name", sa.String(length=255), nullable=True),
        sa.Column("reference_status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_attendees_event_id_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendees")),
    )
    op.create_index(op.f("ix_attendees_event_id"), "attendees", ["event_id"], unique=False)
    op.create_table(
        "attendee_model_versions",
        sa.Column("attendee_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"],
            ["attendees.id"],
            name=op.f("fk_attendee_model_versions_attendee_id_attendees"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attendee_id", "model_version", name=op.f("pk_attendee_model_versions")),
    )
    op.create_index(
        "ix_attendee_model_versions_event_id_model_version",
        "attendee_model_versions",
        ["event_id", "model_version"],
        unique=False,
    )
    op.create_table(
        "attendee_vectors",
        sa.Column("attendee_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"],
            ["attendees.id"],
            name=op.f("fk_attendee_vectors_attendee_id_attendees"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attendee_id", "model_version", name=op.f("pk_attendee_vectors")),
    )
    op.create_index(op.f("ix_attendee_vectors_event_id"), "attendee_vectors", ["event_id"], unique=False)
    op.create_table(
        "engine_users",
        sa.Column("attendee_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("collection_id", sa.String(length=255), nullable=False),
        sa.Column("external_user_id", sa.String(length=128), nullable=False),
        sa.Column("external_face_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name=op.f("fk_engine_users_attendee_id_attendees"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("attendee_id", "model_version", name=op.f("pk_engine_users")),
    )
    op.create_index(op.f("ix_engine_users_event_id"), "engine_users", ["event_id"], unique=False)
    op.create_table(
        "photos",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("uploader_id", sa.String(length=26), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("declared_sha256", sa.String(length=64), nullable=False),
        sa.Column("declared_size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("duplicate_of", sa.String(length=26), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("source_format", sa.String(length=10), nullable=True),
        sa.Column("face_count", sa.Integer(), nullable=True),
        sa.Column("perceptual_hash", sa.BigInteger(), nullable=True),
        sa.Column("batch_queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("near_duplicate_fingerprint", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_photos_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"], ["attendees.id"], name=op.f("fk_photos_uploader_id_attendees"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
        sa.UniqueConstraint("object_key", name=op.f("uq_photos_object_key")),
    )
    op.create_index("ix_photos_batch_queued_at", "photos", ["batch_queued_at"], unique=False)
    op.create_index("ix_photos_event_id_perceptual_hash", "photos", ["event_id", "perceptual_hash"], unique=False)
    op.create_index("ix_photos_event_id_sha256", "photos", ["event_id", "sha256"], unique=False)
    op.create_index("ix_photos_event_id_status", "photos", ["event_id", "status"], unique=False)
    op.create_index(op.f("ix_photos_uploader_id"), "photos", ["uploader_id"], unique=False)
    op.create_table(
        "attendee_references",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("attendee_id", sa.String(length=26), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("face_id", sa.String(length=26), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"],
            ["attendees.id"],
            name=op.f("fk_attendee_references_attendee_id_attendees"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_attendee_references_photo_id_photos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendee_references")),
        sa.UniqueConstraint(
            "attendee_id",
            "model_version",
            "photo_id",
            name=op.f("uq_attendee_references_attendee_id_model_version_photo_id"),
        ),
    )
    op.create_index(
        "ix_attendee_references_event_id_model_version",
        "attendee_references",
        ["event_id", "model_version"],
        unique=False,
    )
    op.create_table(
        "faces",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("detector_version", sa.String(length=100), nullable=False),
        sa.Column("face_index", sa.Integer(), nullable=False),
        sa.Column("left", sa.Integer(), nullable=False),
        sa.Column("top", sa.Integer(), nullable=False),
        sa.Column("right", sa.Integer(), nullable=False),
        sa.Column("bottom", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name=op.f("fk_faces_photo_id_photos"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faces")),
        sa.UniqueConstraint(
            "photo_id", "detector_version", "face_index", name=op.f("uq_faces_photo_id_detector_version_face_index")
        ),
    )
    op.create_table(
        "match_candidates",
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("attendee_id", sa.String(length=26), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("face_id", sa.String(length=26), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("policy_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"],
            ["attendees.id"],
            name=op.f("fk_match_candidates_attendee_id_attendees"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_match_candidates_photo_id_photos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("photo_id", "attendee_id", name=op.f("pk_match_candidates")),
    )
    op.create_index("ix_match_candidates_attendee_id", "match_candidates", ["attendee_id"], unique=False)
    op.create_index(op.f("ix_match_candidates_event_id"), "match_candidates", ["event_id"], unique=False)
    op.create_table(
        "photo_match_policies",
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("policy_id", sa.String(length=100), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_photo_match_policies_photo_id_photos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("photo_id", "model_version", name=op.f("pk_photo_match_policies")),
    )
    op.create_index(
        "ix_photo_match_policies_event_id_model_version",
        "photo_match_policies",
        ["event_id", "model_version"],
        unique=False,
    )
    op.create_table(
        "photo_model_versions",
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_photo_model_versions_photo_id_photos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("photo_id", "model_version", name=op.f("pk_photo_model_versions")),
    )
    op.create_index(
        "ix_photo_model_versions_event_id_model_version",
        "photo_model_versions",
        ["event_id", "model_version"],
        unique=False,
    )
    op.create_table(
        "realtime_outbox",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=50), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_realtime_outbox_photo_id_photos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_outbox")),
        sa.UniqueConstraint(
            "photo_id", "topic", "model_version", name=op.f("uq_realtime_outbox_photo_id_topic_model_version")
        ),
    )
    op.create_index("ix_realtime_outbox_sent_at_created_at", "realtime_outbox", ["sent_at", "created_at"], unique=False)
    op.create_table(
        "engine_faces",
        sa.Column("face_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("collection_id", sa.String(length=255), nullable=False),
        sa.Column("external_face_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["face_id"], ["faces.id"], name=op.f("fk_engine_faces_face_id_faces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("face_id", "model_version", name=op.f("pk_engine_faces")),
    )
    op.create_index(
        "ix_engine_faces_photo_id_model_version", "engine_faces", ["photo_id", "model_version"], unique=False
    )
    op.create_table(
        "face_clusters",
        sa.Column("face_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("cluster_id", sa.String(length=26), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attendee_id", sa.String(length=26), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name=op.f("fk_face_clusters_attendee_id_attendees"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["face_id"], ["faces.id"], name=op.f("fk_face_clusters_face_id_faces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("face_id", "model_version", name=op.f("pk_face_clusters")),
    )
    op.create_index(
        "ix_face_clusters_event_id_model_version", "face_clusters", ["event_id", "model_version"], unique=False
    )
    op.create_index(
        "ix_face_clusters_photo_id_model_version", "face_clusters", ["photo_id", "model_version"], unique=False
    )
    op.create_table(
        "face_quality",
        sa.Column("face_id", sa.String(length=26), nullable=False),
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("size_px", sa.Integer(), nullable=False),
        sa.Column("sharpness", sa.Float(), nullable=False),
        sa.Column("yaw_degrees", sa.Float(), nullable=False),
        sa.Column("matchable", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["face_id"], ["faces.id"], name=op.f("fk_face_quality_face_id_faces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("face_id", name=op.f("pk_face_quality")),
    )
    op.create_index(op.f("ix_face_quality_photo_id"), "face_quality", ["photo_id"], unique=False)
    op.create_table(
        "face_vectors",
        sa.Column("face_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["face_id"], ["faces.id"], name=op.f("fk_face_vectors_face_id_faces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("face_id", "model_version", name=op.f("pk_face_vectors")),
    )
    op.create_index(
        "ix_face_vectors_event_id_model_version", "face_vectors", ["event_id", "model_version"], unique=False
    )
    op.create_index(
        "ix_face_vectors_photo_id_model_version", "face_vectors", ["photo_id", "model_version"], unique=False
    )
    op.create_table(
        "matches",
        sa.Column("photo_id", sa.String(length=26), nullable=False),
        sa.Column("attendee_id", sa.String(length=26), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("face_id", sa.String(length=26), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy_id", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["attendee_id"], ["attendees.id"], name=op.f("fk_matches_attendee_id_attendees"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], name=op.f("fk_matches_face_id_faces"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_matches_photo_id_photos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("photo_id", "attendee_id", "model_version", name=op.f("pk_matches")),
    )
    op.create_index("ix_matches_attendee_id", "matches", ["attendee_id"], unique=False)
    op.create_index(op.f("ix_matches_event_id"), "matches", ["event_id"], unique=False)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
