"""SQLAlchemy Core tables. The same tables run on SQLite (embedded default) and PostgreSQL.

Every vector and match carries the model version that made it; keys include it so vectors of
several versions can coexist during a re-embedding and are never confused.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

ID = String(26)
VERSION = String(100)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _timestamps() -> list[Column]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    ]


events = Table(
    "events",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("active_model_version", VERSION),  # None: whatever version is configured
    *_timestamps(),
)

attendees = Table(
    "attendees",
    metadata,
    Column("id", ID, primary_key=True),
    Column("event_id", ID, ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("consent", Boolean, nullable=False),
    Column("selfie_key", String(1024)),
    Column("selfie_file_name", String(255)),
    Column("reference_status", String(20), nullable=False),
    Column("reason", Text),
    *_timestamps(),
)

photos = Table(
    "photos",
    metadata,
    Column("id", ID, primary_key=True),
    Column("event_id", ID, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("uploader_id", ID, ForeignKey("attendees.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("file_name", String(255), nullable=False),
    Column("object_key", String(1024), nullable=False, unique=True),
    Column("content_type", String(100), nullable=False),
    Column("declared_sha256", String(64), nullable=False),
    Column("declared_size", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", Text),
    Column("sha256", String(64)),
    Column("duplicate_of", ID),
    Column("width", Integer),
    Column("height", Integer),
    Column("source_format", String(10)),
    Column("face_count", Integer),
    # 64-bit DCT perceptual hash of the verified image (near_duplicates.py), stored signed as BIGINT;
    # None until the photo is verified.
    Column("perceptual_hash", BigInteger),
    # Set while the photo waits for the batch sensor (its uploader had another photo waiting at
    # intake); cleared when a batch run is requested for it.
    Column("batch_queued_at", DateTime(timezone=True)),
    # near_duplicates.Fingerprint.pack(): the finer hash that confirms a perceptual-hash match, and
    # the size, sharpness and brightness that pick the better of two copies; None until verified
    # (and for photos too flat to compare).
    Column("near_duplicate_fingerprint", LargeBinary),
    *_timestamps(),
    Index("ix_photos_event_id_status", "event_id", "status"),
    Index("ix_photos_event_id_sha256", "event_id", "sha256"),
    # Near-duplicate check: one read of an event's hashes per verified photo.
    Index("ix_photos_event_id_perceptual_hash", "event_id", "perceptual_hash"),
    Index("ix_photos_batch_queued_at", "batch_queued_at"),
)

faces = Table(
    "faces",
    metadata,
    Column("id", ID, primary_key=True),
    Column("photo_id", ID, ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", ID, nullable=False),
    Column("detector_version", VERSION, nullable=False),
    Column("face_index", Integer, nullable=False),
    Column("left", Integer, nullable=False),
    Column("top", Integer, nullable=False),
    Column("right", Integer, nullable=False),
    Column("bottom", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("photo_id", "detector_version", "face_index"),
)

face_vectors = Table(
    "face_vectors",
    metadata,
    Column("face_id", ID, ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    # Denormalised so a late joiner is matched against an event's faces with one indexed read.
    Column("event_id", ID, nullable=False),
    Column("photo_id", ID, nullable=False),
    Column("dimension", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),  # float32, little-endian
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_face_vectors_event_id_model_version", "event_id", "model_version"),
    Index("ix_face_vectors_photo_id_model_version", "photo_id", "model_version"),
)

attendee_vectors = Table(
    "attendee_vectors",
    metadata,
    Column("attendee_id", ID, ForeignKey("attendees.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    Column("event_id", ID, nullable=False, index=True),
    Column("dimension", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per photo and model version once the photo's faces have a representation under that
# version and it has been matched under it: what a re-embedding still has to do, and when an event
# can cut over to the new version.
photo_model_versions = Table(
    "photo_model_versions",
    metadata,
    Column("photo_id", ID, ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    Column("event_id", ID, nullable=False),
    Column("faces", Integer, nullable=False),
    Column("matched_at", DateTime(timezone=True), nullable=False),
    Index("ix_photo_model_versions_event_id_model_version", "event_id", "model_version"),
)

# The same for attendees: their reference exists under the version AND the photos already taken
# were searched for them (late-joiner matching). An event cuts over only when both are done.
attendee_model_versions = Table(
    "attendee_model_versions",
    metadata,
    Column("attendee_id", ID, ForeignKey("attendees.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    Column("event_id", ID, nullable=False),
    Column("matched_at", DateTime(timezone=True), nullable=False),
    Index("ix_attendee_model_versions_event_id_model_version", "event_id", "model_version"),
)

# Engines that keep faces on their side (AWS Rekognition) hand back ids instead of vectors: the
# face's id in the engine's collection for (event, model version), and the attendee's user id there.
engine_faces = Table(
    "engine_faces",
    metadata,
    Column("face_id", ID, ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    Column("event_id", ID, nullable=False),
    Column("photo_id", ID, nullable=False),
    Column("collection_id", String(255), nullable=False),
    Column("external_face_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_engine_faces_photo_id_model_version", "photo_id", "model_version"),
)

engine_users = Table(
    "engine_users",
    metadata,
    Column("attendee_id", ID, ForeignKey("attendees.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    Column("event_id", ID, nullable=False, index=True),
    Column("collection_id", String(255), nullable=False),
    Column("external_user_id", String(128), nullable=False),
    Column("external_face_id", String(64), nullable=False),  # the selfie's face, associated to the user
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Messages for guests' galleries, written in the same transaction as the matches they announce and
# marked sent once delivered: a failed delivery is retried later, a re-run enqueues nothing new.
realtime_outbox = Table(
    "realtime_outbox",
    metadata,
    Column("id", ID, primary_key=True),
    Column("event_id", ID, nullable=False),
    Column("photo_id", ID, ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
    Column("model_version", VERSION, nullable=False),
    Column("topic", String(200), nullable=False),
    Column("event", String(50), nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("private", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("sent_at", DateTime(timezone=True)),
    *_timestamps(),
    UniqueConstraint("photo_id", "topic", "model_version"),
    Index("ix_realtime_outbox_sent_at_created_at", "sent_at", "created_at"),
)

matches = Table(
    "matches",
    metadata,
    Column("photo_id", ID, ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
    Column("attendee_id", ID, ForeignKey("attendees.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    Column("event_id", ID, nullable=False, index=True),
    Column("face_id", ID, ForeignKey("faces.id", ondelete="CASCADE"), nullable=False),
    Column("similarity", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_matches_attendee_id", "attendee_id"),
)

# Work leases (leases.py): who is working on a photo or an attendee right now, until when. Claimed
# with a conditional insert/update so two claimers never both win; renewed while the holder works;
# a killed holder's leases expire and the next claimer takes the work. kind "holder" rows are each
# holder's own heartbeat (item_id = holder id), so a run it left STARTED can be told from a live one.
work_leases = Table(
    "work_leases",
    metadata,
    Column("kind", String(20), primary_key=True),  # "photo" | "attendee" | "holder"
    Column("item_id", String(100), primary_key=True),
    Column("holder", String(100), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Index("ix_work_leases_holder", "holder"),
)


# -- the matching policy (migration 0007) -------------------------------------------------------
# The policy that made each match (match_policy.MatchPolicy.id); NULL for matches made before there
# was one. Appended here rather than in the table above so the matches table stays as it was written.
matches.append_column(Column("policy_id", VERSION))

# Which policy each photo was last matched under, per model version: a photo matched under another
# policy is re-matched (services/versions.rematch_for_policy), whether or not it has matches.
photo_match_policies = Table(
    "photo_match_policies",
    metadata,
    Column("photo_id", ID, ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    Column("event_id", ID, nullable=False),
    Column("policy_id", VERSION, nullable=False),
    Column("matched_at", DateTime(timezone=True), nullable=False),
    Index("ix_photo_match_policies_event_id_model_version", "event_id", "model_version"),
)

# Faces below the confident bar but above the loose one, proposed to one guest alone for a "this is
# me": proposed -> confirmed (then also a match) or refused (never proposed or matched again). One
# row per (photo, guest) whatever the model version, so a refusal outlives a re-embedding.
match_candidates = Table(
    "match_candidates",
    metadata,
    Column("photo_id", ID, ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
    Column("attendee_id", ID, ForeignKey("attendees.id", ondelete="CASCADE"), primary_key=True),
    Column("event_id", ID, nullable=False, index=True),
    Column("model_version", VERSION, nullable=False),
    Column("face_id", ID, nullable=False),
    Column("similarity", Float, nullable=False),
    Column("policy_id", VERSION, nullable=False),
    Column("status", String(20), nullable=False),  # proposed | confirmed | refused
    Column("decided_at", DateTime(timezone=True)),
    *_timestamps(),
    Index("ix_match_candidates_attendee_id", "attendee_id"),
)

# References beyond the sign-up selfie (attendee_vectors): faces the guest confirmed, and faces
# matched with high confidence, each under the model version that embedded it. Only for consenting
# guests; they go with the guest (and with the photo they came from).
attendee_references = Table(
    "attendee_references",
    metadata,
    Column("id", ID, primary_key=True),
    Column("attendee_id", ID, ForeignKey("attendees.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", ID, nullable=False),
    Column("model_version", VERSION, nullable=False),
    Column("photo_id", ID, ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
    Column("face_id", ID, nullable=False),
    Column("source", String(20), nullable=False),  # confirmed | matched
    Column("dimension", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("attendee_id", "model_version", "photo_id"),
    Index("ix_attendee_references_event_id_model_version", "event_id", "model_version"),
)

# Per detected face: what decides whether it may be matched (faces/quality.py). A face without a
# row (detected before quality was measured, or by a collection engine) counts as matchable.
face_quality = Table(
    "face_quality",
    metadata,
    Column("face_id", ID, ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    Column("photo_id", ID, nullable=False, index=True),
    Column("size_px", Integer, nullable=False),  # the box's shorter side in the full-size image
    Column("sharpness", Float, nullable=False),  # variance of the Laplacian of the face at a fixed size
    Column("yaw_degrees", Float, nullable=False),  # estimated from the 5 landmarks; 0 is frontal
    Column("matchable", Boolean, nullable=False),
    Column("reason", String(100)),  # why not matchable
)

# Unknown-face clusters (services/face_clusters.py): every face of a published photo that nobody
# matched, under one model version, grouped by person, so ops see "a person in 30 photos who has not
# signed up" and a late joiner's selfie brings in their whole cluster. state: "unclaimed" (an
# unknown person), "claimed" (a guest's selfie claimed the cluster: attendee_id and the face's
# similarity to that selfie are kept so re-matching the photo keeps the match), "withheld" (the face
# was a guest's who withdrew consent or was erased: never clustered or claimed again).
face_clusters = Table(
    "face_clusters",
    metadata,
    Column("face_id", ID, ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", VERSION, primary_key=True),
    Column("event_id", ID, nullable=False),
    Column("photo_id", ID, nullable=False),
    Column("cluster_id", ID),  # None once withheld
    Column("state", String(10), nullable=False),
    Column("attendee_id", ID, ForeignKey("attendees.id", ondelete="SET NULL")),
    Column("similarity", Float),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_face_clusters_event_id_model_version", "event_id", "model_version"),
    Index("ix_face_clusters_photo_id_model_version", "photo_id", "model_version"),
)
