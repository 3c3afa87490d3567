"""Configuration from the environment (every variable: README.md, "Configuration"), read when a
resource or command is built, never at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from picsaris_pipeline.errors import ConfigurationError

REALTIME_PUBLISHERS = ("log", "supabase", "pg_notify")


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
    realtime: str  # "log" | "supabase" | "pg_notify"
    aws_region: str | None  # Rekognition's region (AWS_REGION / AWS_DEFAULT_REGION)
    rekognition_endpoint_url: str | None  # None: AWS's public endpoint for the region
    rekognition_collection_prefix: str
    # Rekognition's own keys: on R2, AWS_ACCESS_KEY_ID holds the bucket's R2 token, which AWS refuses.
    # Unset: boto3's default chain (environment, profile, ECS task role / instance profile).
    rekognition_access_key_id: str | None
    rekognition_secret_access_key: str | None

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
        supabase_url = env.get("SUPABASE_URL") or None
        realtime = env.get("PICSARIS_REALTIME") or ("supabase" if supabase_url else "log")
        if realtime not in REALTIME_PUBLISHERS:
            raise ConfigurationError(
                f"PICSARIS_REALTIME must be one of {', '.join(REALTIME_PUBLISHERS)}, got {realtime!r}"
            )
        return cls(
            home=home,
            database_url=env.get("PICSARIS_DATABASE_URL") or f"sqlite:///{home / 'picsaris.db'}",
            bucket=env.get("PICSARIS_BUCKET") or None,
            s3_endpoint_url=env.get("PICSARIS_S3_ENDPOINT_URL") or None,
            face_engine=engine,
            face_model=env.get("PICSARIS_FACE_MODEL") or None,
            match_threshold=match_threshold,
            dagster_url=env.get("PICSARIS_DAGSTER_URL") or None,
            supabase_url=supabase_url,
            supabase_service_role_key=env.get("SUPABASE_SERVICE_ROLE_KEY") or None,
            realtime=realtime,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            rekognition_endpoint_url=env.get("PICSARIS_REKOGNITION_ENDPOINT_URL") or None,
            rekognition_collection_prefix=env.get("PICSARIS_REKOGNITION_COLLECTION_PREFIX") or "picsaris",
            rekognition_access_key_id=env.get("PICSARIS_REKOGNITION_ACCESS_KEY_ID") or None,
            rekognition_secret_access_key=env.get("PICSARIS_REKOGNITION_SECRET_ACCESS_KEY") or None,
        )


def whole_number_from_env(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    """An optional whole-number setting (tuning knobs such as PICSARIS_WORKERS), checked."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from error
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigurationError(f"{name} must be {bounds}, got {value}")
    return value
