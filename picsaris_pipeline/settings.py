"""Configuration from the environment (DESIGN §6), read when a resource or command is built,
never at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from picsaris_pipeline.errors import ConfigurationError


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    bucket: str | None  # None: the local directory store under home
    s3_endpoint_url: str | None
    face_engine: str
    face_model: str | None  # None: the engine's default
    match_threshold: float | None  # minimum similarity; None: the engine's default
    dagster_url: str | None
    supabase_url: str | None
    supabase_service_role_key: str | None

    @property
    def local_bucket_dir(self) -> Path:
        return self.home / "bucket"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("PICSARIS_HOME") or ".picsaris").expanduser().resolve()
        threshold = env.get("PICSARIS_MATCH_THRESHOLD")
        try:
            match_threshold = float(threshold) if threshold else None
        except ValueError as error:
            raise ConfigurationError(f"PICSARIS_MATCH_THRESHOLD must be a number, got {threshold!r}") from error
        if match_threshold is not None and not 0.0 < match_threshold < 1.0:
            raise ConfigurationError("PICSARIS_MATCH_THRESHOLD is a similarity between 0 and 1")
        engine = env.get("PICSARIS_FACE_ENGINE") or "dlib"
        if engine not in ("dlib", "rekognition"):
            raise ConfigurationError(f"PICSARIS_FACE_ENGINE must be dlib or rekognition, got {engine!r}")
        return cls(
            home=home,
            database_url=env.get("PICSARIS_DATABASE_URL") or f"sqlite:///{home / 'picsaris.db'}",
            bucket=env.get("PICSARIS_BUCKET") or None,
            s3_endpoint_url=env.get("PICSARIS_S3_ENDPOINT_URL") or None,
            face_engine=engine,
            face_model=env.get("PICSARIS_FACE_MODEL") or None,
            match_threshold=match_threshold,
            dagster_url=env.get("PICSARIS_DAGSTER_URL") or None,
            supabase_url=env.get("SUPABASE_URL") or None,
            supabase_service_role_key=env.get("SUPABASE_SERVICE_ROLE_KEY") or None,
        )
