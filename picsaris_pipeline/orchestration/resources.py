"""Dagster resources: one per external system, each a thin typed wrapper that builds the library
object from explicit config or, where config is left empty, from the Settings (README.md,
"Configuration"): handed in with `with_settings`, else read from the environment once, when the
resource is first used (Dagster gives each run its own copy of a resource, so once per run),
never at import."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Self

import dagster as dg
from pydantic import PrivateAttr

from picsaris_pipeline.db.repository import Repository, connect
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.faces.registry import engine_class
from picsaris_pipeline.realtime import RealtimePublisher, build_publisher
from picsaris_pipeline.settings import Settings
from picsaris_pipeline.storage import LocalObjectStore, ObjectStore, S3ObjectStore


class SettingsResource(dg.ConfigurableResource):
    """A resource whose defaults come from one Settings, read once per resource object."""

    _settings: Settings | None = PrivateAttr(default=None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    def with_settings(self, settings: Settings) -> Self:
        """This resource, taking its defaults from `settings` instead of the environment."""
        self._settings = settings
        return self


class DatabaseResource(SettingsResource):
    """The application database (SQLite on the embedded default, Supabase Postgres in production)."""

    url: str | None = None  # default: PICSARIS_DATABASE_URL, else SQLite under PICSARIS_HOME

    def repository(self) -> Repository:
        url = self.url or self.settings.database_url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return connect(url)


@functools.lru_cache(maxsize=8)
def _store(bucket: str | None, endpoint_url: str | None, local_root: str) -> ObjectStore:
    # One client per configuration per process: boto3 clients are thread-safe and costly to build.
    if bucket:
        return S3ObjectStore.from_settings(bucket, endpoint_url=endpoint_url)
    return LocalObjectStore(Path(local_root))


class ObjectStoreResource(SettingsResource):
    """Where photos live: an S3-compatible bucket (Cloudflare R2) or a local directory."""

    bucket: str | None = None  # default: PICSARIS_BUCKET; none at all means the local directory
    endpoint_url: str | None = None  # default: PICSARIS_S3_ENDPOINT_URL
    local_root: str | None = None  # default: $PICSARIS_HOME/bucket

    def store(self) -> ObjectStore:
        settings = self.settings
        bucket = self.bucket or settings.bucket
        root = self.local_root or str(settings.local_bucket_dir)
        return _store(bucket, self.endpoint_url or settings.s3_endpoint_url, root)


class FaceEngineResource(SettingsResource):
    """The face engine and model version; models load lazily, once per process."""

    engine: str | None = None  # default: PICSARIS_FACE_ENGINE (dlib)
    model_version: str | None = None  # default: PICSARIS_FACE_MODEL, else the engine's default
    min_similarity: float | None = None  # default: PICSARIS_MATCH_THRESHOLD, else the engine's default

    def get(self) -> FaceEngine:
        settings = self.settings
        return engine_class(self.engine or settings.face_engine).for_settings(
            settings, self.model_version or settings.face_model
        )

    def threshold(self) -> float:
        """The minimum similarity (0..1) for a match: configured, else the engine's own default
        (0.5 for dlib's 1 - distance, the match policy's confident bar; 0.80 for Rekognition's
        similarity of 80). A configured 0 is a threshold like any other, not "unset"."""
        if self.min_similarity is not None:
            return self.min_similarity
        if self.settings.match_threshold is not None:
            return self.settings.match_threshold
        return self.get().default_min_similarity


class RealtimeResource(SettingsResource):
    """Pushes "you are in this photo" to guests' galleries: Supabase Realtime broadcast, pg_notify,
    or the log on the embedded default (PICSARIS_REALTIME; Supabase when SUPABASE_URL is set)."""

    def publisher(self) -> RealtimePublisher:
        return build_publisher(self.settings)
