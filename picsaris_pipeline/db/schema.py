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


def _at(name: str) -> Column:
    """A required moment, stored with its time zone."""
    return Column(name, DateTime(timezone=True), nullable=False)


def _timestamps() -> list[Column]:
    return [_at("created_at"), _at("updated_at")]


def _row_of(column: str, table: str, primary_key: bool = False, index: bool = False) -> Column:
    """A required column naming a row of `table` (its id); this row goes when that one is deleted."""
    return Column(
        column, ID, ForeignKey(f"{table}.id", ondelete="CASCADE"), primary_key=primary_key, nullable=False, index=index
    )


def _per_version(column: str, table: str) -> list[Column]:
    """The key of one row per (row of `table`, model version): versions coexist during a re-embedding."""
    return [_row_of(column, table, primary_key=True), Column("model_version", VERSION, primary_key=True)]


def _event_id(index: bool = False) -> Column:
    """The event a row belongs to, kept on the row (not only through its photo or attendee) so that
    one indexed read finds an event's rows."""
    return Column("event_id", ID, nullable=False, index=index)


def _vector() -> list[Column]:
    """A face vector: its length, and its float32 values, little-endian (db/vector_reads.py)."""
    return [Column("dimension", Integer, nullable=False), Column("vector", LargeBinary, nullable=False)]


def _by_event_and_version(table: str) -> Index:
    return Index(f"ix_{table}_event_id_model_version", "event_id", "model_version")


def _matched_per_version(name: str, column: str, table: str, *columns: Column) -> Table:
    """A per-version table of what was done for a row of `table` under a version, and when it was matched."""
    return _per_version_table(name, column, table, *columns, _at("matched_at"))


def _per_version_table(name: str, column: str, table: str, *columns: Column | Index) -> Table:
    """A table of one row per (row of `table`, model version), denormalised with the event so one
    indexed read finds an event's rows under a version (a late joiner is matched against an event's
    faces that way)."""
    return Table(
        name,
        metadata,
        *_per_version(column, table),
        _event_id(),
        *columns,
        _by_event_and_version(name),
    )


events = Table(
    "events",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("active_model_version", VERSION),  # None: whatever version is configured
    # When the event is over (None: its last upload plus a quiet period, services/retention.py) and
    # when its Dagster partitions and runs were archived (None: not yet): archived once.
    Column("ends_at", DateTime(timezone=True)),
    Column("archived_at", DateTime(timezone=True)),
    *_timestamps(),
)

attendees = Table(
    "attendees",
    metadata,
    Column("id", ID, primary_key=True),
    _row_of("event_id", "events", index=True),
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
    _row_of("event_id", "events"),
    _row_of("uploader_id", "attendees", index=True),
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
    # 64-bit DCT perceptual hash of the verified image (domain/near_duplicates.py), stored signed as BIGINT;
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
    _row_of("photo_id", "photos"),
    _event_id(),
    Column("detector_version", VERSION, nullable=False),
    Column("face_index", Integer, nullable=False),
    Column("left", Integer, nullable=False),
    Column("top", Integer, nullable=False),
    Column("right", Integer, nullable=False),
    Column("bottom", Integer, nullable=False),
    Column("score", Float, nullable=False),
    _at("created_at"),
    UniqueConstraint("photo_id", "detector_version", "face_index"),
)

face_vectors = _per_version_table(
    "face_vectors",
    "face_id",
    "faces",
    Column("photo_id", ID, nullable=False),
    *_vector(),
    _at("created_at"),
    Index("ix_face_vectors_photo_id_model_version", "photo_id", "model_version"),
)

attendee_vectors = Table(
    "attendee_vectors",
    metadata,
    *_per_version("attendee_id", "attendees"),
    _event_id(index=True),
    *_vector(),
    _at("created_at"),
)

# One row per photo and model version once the photo's faces have a representation under that
# version and it has been matched under it: what a re-embedding still has to do, and when an event
# can cut over to the new version.
photo_model_versions = _matched_per_version(
    "photo_model_versions", "photo_id", "photos", Column("faces", Integer, nullable=False)
)

# The same for attendees: their reference exists under the version AND the photos already taken
# were searched for them (late-joiner matching). An event cuts over only when both are done.
attendee_model_versions = _matched_per_version("attendee_model_versions", "attendee_id", "attendees")

# Engines that keep faces on their side (AWS Rekognition) hand back ids instead of vectors: the
# face's id in the engine's collection for (event, model version), and the attendee's user id there.
engine_faces = Table(
    "engine_faces",
    metadata,
    *_per_version("face_id", "faces"),
    _event_id(),
    Column("photo_id", ID, nullable=False),
    Column("collection_id", String(255), nullable=False),
    Column("external_face_id", String(64), nullable=False),
    _at("created_at"),
    Index("ix_engine_faces_photo_id_model_version", "photo_id", "model_version"),
)

engine_users = Table(
    "engine_users",
    metadata,
    *_per_version("attendee_id", "attendees"),
    _event_id(index=True),
    Column("collection_id", String(255), nullable=False),
    Column("external_user_id", String(128), nullable=False),
    Column("external_face_id", String(64), nullable=False),  # the selfie's face, associated to the user
    _at("created_at"),
)

# Messages for guests' galleries, written in the same transaction as the matches they announce and
# marked sent once delivered: a failed delivery is retried later, a re-run enqueues nothing new.
realtime_outbox = Table(
    "realtime_outbox",
    metadata,
    Column("id", ID, primary_key=True),
    _event_id(),
    _row_of("photo_id", "photos"),
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
    _row_of("photo_id", "photos", primary_key=True),
    *_per_version("attendee_id", "attendees"),
    _event_id(index=True),
    _row_of("face_id", "faces"),
    Column("similarity", Float, nullable=False),
    _at("created_at"),
    Index("ix_matches_attendee_id", "attendee_id"),
)

# Work leases (services/leases.py): who is working on a photo or an attendee right now, until when. Claimed
# with a conditional insert/update so two claimers never both win; renewed while the holder works;
# a killed holder's leases expire and the next claimer takes the work. kind "holder" rows are each
# holder's own heartbeat (item_id = holder id), so a run it left STARTED can be told from a live one.
work_leases = Table(
    "work_leases",
    metadata,
    Column("kind", String(20), primary_key=True),  # "photo" | "attendee" | "holder"
    Column("item_id", String(100), primary_key=True),
    Column("holder", String(100), nullable=False),
    _at("expires_at"),
    _at("claimed_at"),
    Index("ix_work_leases_holder", "holder"),
)


# -- the matching policy -------------------------------------------------------------------------------
# The policy that made each match (match_policy.MatchPolicy.id); NULL for matches made before there
# was one. Appended here rather than in the table above so the matches table stays as it was written.
matches.append_column(Column("policy_id", VERSION))

# Which policy each photo was last matched under, per model version: a photo matched under another
# policy is re-matched (services/versions.rematch_for_policy), whether or not it has matches.
photo_match_policies = _matched_per_version(
    "photo_match_policies", "photo_id", "photos", Column("policy_id", VERSION, nullable=False)
)

# Faces below the confident bar but above the loose one, proposed to one guest alone for a "this is
# me": proposed -> confirmed (then also a match) or refused (never proposed or matched again). One
# row per (photo, guest) whatever the model version, so a refusal outlives a re-embedding.
match_candidates = Table(
    "match_candidates",
    metadata,
    _row_of("photo_id", "photos", primary_key=True),
    _row_of("attendee_id", "attendees", primary_key=True),
    _event_id(index=True),
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
    _row_of("attendee_id", "attendees"),
    _event_id(),
    Column("model_version", VERSION, nullable=False),
    _row_of("photo_id", "photos"),
    Column("face_id", ID, nullable=False),
    Column("source", String(20), nullable=False),  # confirmed | matched
    *_vector(),
    _at("created_at"),
    UniqueConstraint("attendee_id", "model_version", "photo_id"),
    _by_event_and_version("attendee_references"),
)

# Per detected face: what decides whether it may be matched (faces/quality.py). A face without a
# row (detected before quality was measured, or by a collection engine) counts as matchable.
face_quality = Table(
    "face_quality",
    metadata,
    _row_of("face_id", "faces", primary_key=True),
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
face_clusters = _per_version_table(
    "face_clusters",
    "face_id",
    "faces",
    Column("photo_id", ID, nullable=False),
    Column("cluster_id", ID),  # None once withheld
    Column("state", String(10), nullable=False),
    Column("attendee_id", ID, ForeignKey("attendees.id", ondelete="SET NULL")),
    Column("similarity", Float),
    _at("created_at"),
    Index("ix_face_clusters_photo_id_model_version", "photo_id", "model_version"),
)
